"""Export a trace's packets as a pcap that Wireshark opens."""

from __future__ import annotations

from pathlib import Path

from model.types import PROTO_TCP, ip_str
from silkcheck.targets.model import sent_packets
from silkcheck.trace import Trace

CLIENT_MAC = "02:00:00:00:00:01"
SWITCH_MAC = "02:00:00:00:00:02"


def export_pcap(trace: Trace, path: str | Path) -> int:
    """Write every packet event as an Ethernet frame; timestamps are the trace's ticks (µs).
    A reactive packet carries the ack it sent when the trace ran on the model."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapWriter

    count = 0
    with PcapWriter(str(path), linktype=1, sync=False) as writer:
        for t, packet in sent_packets(trace):
            ft = packet.ft
            ip = IP(src=ip_str(ft.src_ip), dst=ip_str(ft.dst_ip))
            if ft.proto == PROTO_TCP:
                l4 = TCP(sport=ft.src_port, dport=ft.dst_port, flags=packet.flags, seq=packet.seq, ack=packet.ack)
            else:
                l4 = UDP(sport=ft.src_port, dport=ft.dst_port)
            frame = Ether(src=CLIENT_MAC, dst=SWITCH_MAC) / ip / l4
            frame.time = t / 1_000_000
            writer.write(frame)
            count += 1
    return count
