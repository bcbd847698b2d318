import pytest

from model.config import Config, ConfigError


def test_defaults_follow_the_demo():
    config = Config()
    assert config.digest_bits == 24
    assert config.version_bits == 6
    assert config.versions == 64
    assert config.conn_capacity == config.stages * config.buckets_per_stage * config.slots_per_bucket


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("digest_bits", 0, "'digest_bits' = 0 is out of range [1, 32]"),
        ("digest_bits", 33, "out of range"),
        ("version_bits", 1, "'version_bits' = 1 is out of range [2, 16]"),
        ("stages", 9, "'stages' = 9"),
        ("bloom_hashes", 5, "'bloom_hashes' = 5"),
        ("syn_auth", 1, "'syn_auth' must be bool"),
        ("stages", 2.0, "'stages' must be int"),
    ],
)
def test_impossible_configs_are_named(field, value, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Config(**{field: value})


def test_teardown_grace_covers_the_learn_delay():
    with pytest.raises(ConfigError, match=r"teardown_grace \(10\) must be at least learn_delay_bound \(20\)"):
        Config(teardown_grace=10, learn_delay_bound=20)


def test_idle_timeout_covers_the_learn_delay():
    with pytest.raises(ConfigError, match=r"idle_timeout \(5\) must be at least learn_delay_bound \(20\)"):
        Config(idle_timeout=5, teardown_grace=20, learn_delay_bound=20)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ConfigError, match=r"unknown config field.*digest_bitz"):
        Config.from_dict({"digest_bitz": 3})


def test_round_trip_and_p4_constants():
    config = Config(digest_bits=16, syn_auth=True)
    assert Config.from_dict(config.to_dict()) == config
    constants = config.p4_constants()
    assert constants["DIGEST_BITS"] == 16
    assert constants["SYN_AUTH"] == 1
