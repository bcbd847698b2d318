/*
 * SilkRoad: stateful layer-4 load balancing with per-connection consistency.
 *
 * P4_16 for BMv2 simple_switch (v1model). The ingress control reads like
 * model/dataplane.py process_packet, table for table and with the same
 * names; every decision mirrors the function of model/decisions.py named in
 * the comment beside it. The constants below are defaults only: the build
 * (`silkcheck p4-build`) passes Config.p4_constants() as -D defines, so the
 * model and the program cannot disagree about widths and sizes.
 *
 * Hash field orders are those of model/hashing.py hash_uses(): distinct uses
 * hash the same fields in a different order, never with a different salt (a
 * CRC salt only XORs a constant into the result). Hashes read metadata
 * copies of the 5-tuple: BMv2 skips the fields of invalid headers, so
 * hashing tcp.srcPort of a UDP packet would hash nothing.
 *
 * Test harness. A packet that arrives from the CPU port (a P4Runtime
 * PacketOut) carries a packet_out header naming its emulated ingress port
 * and a tag. It is processed exactly like a packet from that port; at the
 * end it goes back to the CPU (PacketIn) with the port it would have left
 * by (dropped too: its packet_in then says so), and a `report` header
 * right after the packet_in header tells the CPU what the pipeline decided:
 * one message per packet, and no digest to build and send. The bytes after
 * the report are the real rewritten frame.
 */

#include <core.p4>
#include <v1model.p4>

#ifndef DIGEST_BITS
#define DIGEST_BITS 24
#endif
#ifndef VERSION_BITS
#define VERSION_BITS 6
#endif
#ifndef STAGES
#define STAGES 4
#endif
#ifndef BUCKETS_PER_STAGE
#define BUCKETS_PER_STAGE 4096
#endif
#ifndef SLOTS_PER_BUCKET
#define SLOTS_PER_BUCKET 4
#endif
#ifndef BLOOM_BITS
#define BLOOM_BITS 2048
#endif
#ifndef BLOOM_HASHES
#define BLOOM_HASHES 3
#endif
#ifndef EPOCH_BITS
#define EPOCH_BITS 8
#endif
#ifndef TRANSIT_SLOTS
#define TRANSIT_SLOTS 1
#endif
#ifndef SYN_AUTH
#define SYN_AUTH 0
#endif
#ifndef COOKIE_KEY
#define COOKIE_KEY 0x5EEDC0DE
#endif

#ifndef VIP_CAPACITY
#define VIP_CAPACITY 1024
#endif
// DIPPoolTable entries (every live pool's DIPs together); DIPPoolSize has one entry per live
// pool and a pool holds at least one DIP, so it needs no more.
#ifndef DIP_POOL_CAPACITY
#define DIP_POOL_CAPACITY 65536
#endif
#ifndef WHITELIST_CAPACITY
#define WHITELIST_CAPACITY 65536
#endif

#define CONN_TABLE_SIZE (BUCKETS_PER_STAGE * SLOTS_PER_BUCKET)

const bit<9> CPU_PORT = 255;
const bit<9> SERVER_PORT = 2;

const bit<16> ETHERTYPE_IPV4 = 0x0800;
const bit<8> PROTO_TCP = 6;
const bit<8> PROTO_UDP = 17;

const bit<8> TCP_FIN = 0x01;
const bit<8> TCP_SYN = 0x02;
const bit<8> TCP_RST = 0x04;
const bit<8> TCP_ACK = 0x10;

// VIPTable update phases (model/decisions.py NORMAL = 0, RECORD, TRANSIT, SEALED);
// no decision tests for NORMAL: a miss there takes old_version, which is the current one.
const bit<2> PHASE_RECORD = 1;
const bit<2> PHASE_TRANSIT = 2;
const bit<2> PHASE_SEALED = 3;

// What the pipeline did (report.outcome) and how (report.path).
const bit<8> ACTION_DROP = 0;
const bit<8> ACTION_FORWARD = 1;
const bit<8> PATH_NO_VIP = 1;
#if SYN_AUTH
const bit<8> ACTION_REPLY = 2;
const bit<8> PATH_AUTH_SYNACK = 2;
const bit<8> PATH_AUTH_COOKIE_OK = 3;
const bit<8> PATH_AUTH_DROP = 4;
const bit<8> LEARN_AUTH = 8;
#endif
const bit<8> PATH_SEALED_TRANSIT_HIT = 5;
const bit<8> PATH_NO_POOL = 6;
const bit<8> PATH_NO_DIP = 7;
const bit<8> PATH_FORWARD = 8;

// Learn event kinds, one bit each (model LearnEvent.kind).
const bit<8> LEARN_NEW = 1;
const bit<8> LEARN_COLLISION = 2;
const bit<8> LEARN_END = 4;
const bit<8> LEARN_SYN = 16;  // a SYN's miss, learned apart from other misses ("syn")

// ---------------------------------------------------------------- headers

@controller_header("packet_out")
header packet_out_t {
    bit<32> tag;
    bit<16> ingress_port;
}

@controller_header("packet_in")
header packet_in_t {
    bit<32> tag;
    bit<16> egress_port;
}

header ethernet_t {
    bit<48> dstAddr;
    bit<48> srcAddr;
    bit<16> etherType;
}

header ipv4_t {
    bit<4>  version;
    bit<4>  ihl;
    bit<8>  diffserv;
    bit<16> totalLen;
    bit<16> identification;
    bit<3>  flags;
    bit<13> fragOffset;
    bit<8>  ttl;
    bit<8>  protocol;
    bit<16> hdrChecksum;
    bit<32> srcAddr;
    bit<32> dstAddr;
}

header tcp_t {
    bit<16> srcPort;
    bit<16> dstPort;
    bit<32> seqNo;
    bit<32> ackNo;
    bit<4>  dataOffset;
    bit<4>  res;
    bit<8>  flags;
    bit<16> window;
    bit<16> checksum;
    bit<16> urgentPtr;
}

header udp_t {
    bit<16> srcPort;
    bit<16> dstPort;
    bit<16> length;
    bit<16> checksum;
}

// report_t as a header in front of a harness packet's frame, its fields in the same order, the
// version and the digest widened to whole bytes (to 16 and 32 bits) so the CPU reads it with
// one fixed layout whatever the widths compiled in.
header report_h {
    bit<32> tag;
    bit<8>  outcome;
    bit<8>  path;
    bit<8>  learned;
    bit<32> src_ip;
    bit<32> dst_ip;
    bit<16> src_port;
    bit<16> dst_port;
    bit<8>  proto;
    bit<16> version;
    bit<8>  phase;
    bit<8>  consults;
    bit<8>  transit_hit;
    bit<8>  hit;
    bit<8>  hit_stage;
    bit<32> digest;
    bit<16> bucket0;
    bit<16> bucket1;
    bit<16> bucket2;
    bit<16> bucket3;
    bit<16> bucket4;
    bit<16> bucket5;
    bit<16> bucket6;
    bit<16> bucket7;
    bit<32> bloom0;
    bit<32> bloom1;
    bit<32> bloom2;
    bit<32> bloom3;
    bit<16> dip_index;
    bit<32> cookie;
}

struct headers_t {
    packet_in_t  packet_in;
    report_h     report;
    packet_out_t packet_out;
    ethernet_t   ethernet;
    ipv4_t       ipv4;
    tcp_t        tcp;
    udp_t        udp;
}

// The learn digest: a pipeline in service sends it when `learned` is not zero. A harness packet
// carries the same fields back in its report header instead.
struct report_t {
    bit<32> tag;
    bit<8>  outcome;
    bit<8>  path;
    bit<8>  learned;
    bit<32> src_ip;
    bit<32> dst_ip;
    bit<16> src_port;
    bit<16> dst_port;
    bit<8>  proto;
    bit<VERSION_BITS> version;
    bit<8>  phase;
    bit<8>  consults;
    bit<8>  transit_hit;
    bit<8>  hit;
    bit<8>  hit_stage;
    bit<DIGEST_BITS> digest;
    bit<16> bucket0;
    bit<16> bucket1;
    bit<16> bucket2;
    bit<16> bucket3;
    bit<16> bucket4;
    bit<16> bucket5;
    bit<16> bucket6;
    bit<16> bucket7;
    bit<32> bloom0;
    bit<32> bloom1;
    bit<32> bloom2;
    bit<32> bloom3;
    bit<16> dip_index;
    bit<32> cookie;
}

struct meta_t {
    // The 5-tuple, copied out of the headers: every hash reads these.
    bit<32> src_ip;
    bit<32> dst_ip;
    bit<16> src_port;
    bit<16> dst_port;
    bit<8>  proto;
    bit<8>  tcp_flags;
    bit<16> l4_len;
    bit<32> cookie_key;

    bit<1>  from_cpu;
    bit<32> tag;
    bit<16> ingress_port;

    bit<1>  vip_hit;
    bit<VERSION_BITS> old_version;
    bit<VERSION_BITS> new_version;
    bit<2>  phase;
    bit<EPOCH_BITS> epoch;
    bit<32> transit_base;

    bit<DIGEST_BITS> digest;
    bit<16> bucket0;
    bit<16> bucket1;
    bit<16> bucket2;
    bit<16> bucket3;
    bit<16> bucket4;
    bit<16> bucket5;
    bit<16> bucket6;
    bit<16> bucket7;
    bit<32> bloom0;
    bit<32> bloom1;
    bit<32> bloom2;
    bit<32> bloom3;
    bit<32> cookie;

    bit<1>  hit;
    bit<8>  hit_stage;
    bit<VERSION_BITS> hit_version;
    bit<1>  consults;
    bit<1>  transit_hit;
    bit<VERSION_BITS> version;

    bit<16> pool_size;
    bit<16> dip_index;

    bit<8>  outcome;
    bit<8>  path;
    bit<8>  learned;
}

// ---------------------------------------------------------------- parser

parser SilkRoadParser(packet_in packet, out headers_t hdr, inout meta_t meta,
                      inout standard_metadata_t std) {
    state start {
        transition select(std.ingress_port) {
            CPU_PORT: parse_packet_out;
            default: parse_ethernet;
        }
    }

    state parse_packet_out {
        packet.extract(hdr.packet_out);
        transition parse_ethernet;
    }

    state parse_ethernet {
        packet.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) {
            ETHERTYPE_IPV4: parse_ipv4;
            default: accept;
        }
    }

    // IPv4 without options: SilkRoad's traffic; anything else finds no VIP.
    state parse_ipv4 {
        packet.extract(hdr.ipv4);
        transition select(hdr.ipv4.ihl, hdr.ipv4.protocol) {
            (5, PROTO_TCP): parse_tcp;
            (5, PROTO_UDP): parse_udp;
            default: accept;
        }
    }

    state parse_tcp {
        packet.extract(hdr.tcp);
        transition accept;
    }

    state parse_udp {
        packet.extract(hdr.udp);
        transition accept;
    }
}

control SilkRoadVerifyChecksum(inout headers_t hdr, inout meta_t meta) {
    apply { }
}

// ---------------------------------------------------------------- ingress

control SilkRoadIngress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t std) {

    // TransitTable: epoch-tagged Bloom filters, one region of BLOOM_BITS cells
    // per slot (one slot per update in progress). A cell is set iff it holds
    // the VIP's current epoch (model/decisions.py transit_contains), so a new
    // update clears its region by changing the epoch in VIPTable: P4Runtime on
    // BMv2 cannot write registers.
    register<bit<EPOCH_BITS>>(TRANSIT_SLOTS * BLOOM_BITS) TransitTable;

    action drop_packet(bit<8> path) {
        meta.outcome = ACTION_DROP;
        meta.path = path;
        mark_to_drop(std);
    }

    // ------------------------------------------------------------ hashes (model/hashing.py HashPlan)

    action compute_hashes() {
        meta.cookie_key = COOKIE_KEY;
        hash(meta.digest, HashAlgorithm.crc32, (bit<DIGEST_BITS>)0,
             { meta.src_ip, meta.dst_ip, meta.src_port, meta.dst_port, meta.proto }, (bit<64>)1 << DIGEST_BITS);
        hash(meta.bucket0, HashAlgorithm.crc32, 16w0,
             { meta.dst_ip, meta.src_ip, meta.src_port, meta.dst_port, meta.proto }, (bit<32>)BUCKETS_PER_STAGE);
#if STAGES > 1
        hash(meta.bucket1, HashAlgorithm.crc32, 16w0,
             { meta.dst_ip, meta.src_port, meta.src_ip, meta.dst_port, meta.proto }, (bit<32>)BUCKETS_PER_STAGE);
#endif
#if STAGES > 2
        hash(meta.bucket2, HashAlgorithm.crc32, 16w0,
             { meta.dst_ip, meta.src_port, meta.dst_port, meta.src_ip, meta.proto }, (bit<32>)BUCKETS_PER_STAGE);
#endif
#if STAGES > 3
        hash(meta.bucket3, HashAlgorithm.crc32, 16w0,
             { meta.dst_ip, meta.src_port, meta.dst_port, meta.proto, meta.src_ip }, (bit<32>)BUCKETS_PER_STAGE);
#endif
#if STAGES > 4
        hash(meta.bucket4, HashAlgorithm.crc32, 16w0,
             { meta.dst_ip, meta.src_port, meta.proto, meta.src_ip, meta.dst_port }, (bit<32>)BUCKETS_PER_STAGE);
#endif
#if STAGES > 5
        hash(meta.bucket5, HashAlgorithm.crc32, 16w0,
             { meta.dst_ip, meta.proto, meta.src_ip, meta.dst_port, meta.src_port }, (bit<32>)BUCKETS_PER_STAGE);
#endif
#if STAGES > 6
        hash(meta.bucket6, HashAlgorithm.crc32, 16w0,
             { meta.dst_port, meta.src_ip, meta.dst_ip, meta.proto, meta.src_port }, (bit<32>)BUCKETS_PER_STAGE);
#endif
#if STAGES > 7
        hash(meta.bucket7, HashAlgorithm.crc32, 16w0,
             { meta.dst_port, meta.src_port, meta.src_ip, meta.dst_ip, meta.proto }, (bit<32>)BUCKETS_PER_STAGE);
#endif
        hash(meta.bloom0, HashAlgorithm.crc32, 32w0,
             { meta.src_ip, meta.dst_ip, meta.dst_port, meta.src_port, meta.proto }, (bit<32>)BLOOM_BITS);
#if BLOOM_HASHES > 1
        hash(meta.bloom1, HashAlgorithm.crc32, 32w0,
             { meta.src_ip, meta.dst_ip, meta.dst_port, meta.proto, meta.src_port }, (bit<32>)BLOOM_BITS);
#endif
#if BLOOM_HASHES > 2
        hash(meta.bloom2, HashAlgorithm.crc32, 32w0,
             { meta.dst_ip, meta.src_ip, meta.dst_port, meta.src_port, meta.proto }, (bit<32>)BLOOM_BITS);
#endif
#if BLOOM_HASHES > 3
        hash(meta.bloom3, HashAlgorithm.crc32, 32w0,
             { meta.dst_ip, meta.src_ip, meta.dst_port, meta.proto, meta.src_port }, (bit<32>)BLOOM_BITS);
#endif
        hash(meta.cookie, HashAlgorithm.crc32, 32w0,
             { meta.cookie_key, meta.src_ip, meta.dst_ip, meta.src_port, meta.dst_port, meta.proto }, (bit<64>)1 << 32);
    }

    // ------------------------------------------------------------ VIPTable

    action set_vip(bit<VERSION_BITS> old_version, bit<VERSION_BITS> new_version, bit<2> phase,
                   bit<EPOCH_BITS> epoch, bit<8> slot) {
        meta.vip_hit = 1;
        meta.transit_base = (bit<32>)slot * BLOOM_BITS;
        meta.old_version = old_version;
        meta.new_version = new_version;
        meta.phase = phase;
        meta.epoch = epoch;
    }

    table VIPTable {
        key = {
            meta.dst_ip: exact @name("ip");
            meta.dst_port: exact @name("port");
            meta.proto: exact @name("proto");
        }
        actions = { set_vip; @defaultonly NoAction; }
        default_action = NoAction();
        size = VIP_CAPACITY;
    }

    // ------------------------------------------------------------ SYN authentication

#if SYN_AUTH
    table Whitelist {
        key = { meta.src_ip: exact @name("src_ip"); }
        actions = { NoAction; }
        default_action = NoAction();
        size = WHITELIST_CAPACITY;
    }

    // Answer on the port the packet came from, addresses and ports swapped.
    action reply(bit<8> flags, bit<32> seq, bit<32> ack) {
        bit<48> mac = hdr.ethernet.srcAddr;
        hdr.ethernet.srcAddr = hdr.ethernet.dstAddr;
        hdr.ethernet.dstAddr = mac;
        hdr.ipv4.srcAddr = meta.dst_ip;
        hdr.ipv4.dstAddr = meta.src_ip;
        hdr.tcp.srcPort = meta.dst_port;
        hdr.tcp.dstPort = meta.src_port;
        hdr.tcp.flags = flags;
        hdr.tcp.seqNo = seq;
        hdr.tcp.ackNo = ack;
        meta.outcome = ACTION_REPLY;
        std.egress_spec = (bit<9>)meta.ingress_port;
    }

#endif

    // ------------------------------------------------------------ ConnTable
    //
    // support_timeout: the switch times every hit, so a controller that gives an entry an
    // idle timeout reads how long it has been idle over P4Runtime (time_since_last_hit)
    // and needs no report of plain hits. Entries written without one (idle_timeout_ns 0,
    // as the BMv2 target's) are never aged by the switch.

    action set_version(bit<VERSION_BITS> version) {
        meta.hit = 1;
        meta.hit_version = version;
    }

    table ConnTable0 {
        key = { meta.bucket0: exact @name("bucket"); meta.digest: exact @name("digest"); }
        actions = { set_version; @defaultonly NoAction; }
        default_action = NoAction();
        size = CONN_TABLE_SIZE;
        support_timeout = true;
    }
#if STAGES > 1
    table ConnTable1 {
        key = { meta.bucket1: exact @name("bucket"); meta.digest: exact @name("digest"); }
        actions = { set_version; @defaultonly NoAction; }
        default_action = NoAction();
        size = CONN_TABLE_SIZE;
        support_timeout = true;
    }
#endif
#if STAGES > 2
    table ConnTable2 {
        key = { meta.bucket2: exact @name("bucket"); meta.digest: exact @name("digest"); }
        actions = { set_version; @defaultonly NoAction; }
        default_action = NoAction();
        size = CONN_TABLE_SIZE;
        support_timeout = true;
    }
#endif
#if STAGES > 3
    table ConnTable3 {
        key = { meta.bucket3: exact @name("bucket"); meta.digest: exact @name("digest"); }
        actions = { set_version; @defaultonly NoAction; }
        default_action = NoAction();
        size = CONN_TABLE_SIZE;
        support_timeout = true;
    }
#endif
#if STAGES > 4
    table ConnTable4 {
        key = { meta.bucket4: exact @name("bucket"); meta.digest: exact @name("digest"); }
        actions = { set_version; @defaultonly NoAction; }
        default_action = NoAction();
        size = CONN_TABLE_SIZE;
        support_timeout = true;
    }
#endif
#if STAGES > 5
    table ConnTable5 {
        key = { meta.bucket5: exact @name("bucket"); meta.digest: exact @name("digest"); }
        actions = { set_version; @defaultonly NoAction; }
        default_action = NoAction();
        size = CONN_TABLE_SIZE;
        support_timeout = true;
    }
#endif
#if STAGES > 6
    table ConnTable6 {
        key = { meta.bucket6: exact @name("bucket"); meta.digest: exact @name("digest"); }
        actions = { set_version; @defaultonly NoAction; }
        default_action = NoAction();
        size = CONN_TABLE_SIZE;
        support_timeout = true;
    }
#endif
#if STAGES > 7
    table ConnTable7 {
        key = { meta.bucket7: exact @name("bucket"); meta.digest: exact @name("digest"); }
        actions = { set_version; @defaultonly NoAction; }
        default_action = NoAction();
        size = CONN_TABLE_SIZE;
        support_timeout = true;
    }
#endif

    // ------------------------------------------------------------ DIPPoolTable

    action set_pool_size(bit<16> size) {
        meta.pool_size = size;
    }

    table DIPPoolSize {
        key = {
            meta.dst_ip: exact @name("ip");
            meta.dst_port: exact @name("port");
            meta.proto: exact @name("proto");
            meta.version: exact @name("version");
        }
        actions = { set_pool_size; @defaultonly NoAction; }
        default_action = NoAction();
        size = DIP_POOL_CAPACITY;
    }

    action rewrite_dip(bit<32> ip, bit<16> port) {
        hdr.ipv4.dstAddr = ip;
        hdr.tcp.dstPort = port;
        hdr.udp.dstPort = port;
        meta.outcome = ACTION_FORWARD;
        meta.path = PATH_FORWARD;
        std.egress_spec = SERVER_PORT;
    }

    table DIPPoolTable {
        key = {
            meta.dst_ip: exact @name("ip");
            meta.dst_port: exact @name("port");
            meta.proto: exact @name("proto");
            meta.version: exact @name("version");
            meta.dip_index: exact @name("index");
        }
        actions = { rewrite_dip; @defaultonly NoAction; }
        default_action = NoAction();
        size = DIP_POOL_CAPACITY;
    }

    // ------------------------------------------------------------ the pipeline

    apply {
        if (hdr.packet_out.isValid()) {
            meta.from_cpu = 1;
            meta.tag = hdr.packet_out.tag;
            meta.ingress_port = hdr.packet_out.ingress_port;
            hdr.packet_out.setInvalid();
        } else {
            meta.ingress_port = (bit<16>)std.ingress_port;
        }
        if (hdr.tcp.isValid()) {
            meta.src_port = hdr.tcp.srcPort;
            meta.dst_port = hdr.tcp.dstPort;
            meta.tcp_flags = hdr.tcp.flags;
        } else if (hdr.udp.isValid()) {
            meta.src_port = hdr.udp.srcPort;
            meta.dst_port = hdr.udp.dstPort;
        }
        if (hdr.tcp.isValid() || hdr.udp.isValid()) {
            meta.src_ip = hdr.ipv4.srcAddr;
            meta.dst_ip = hdr.ipv4.dstAddr;
            meta.proto = hdr.ipv4.protocol;
            meta.l4_len = hdr.ipv4.totalLen - 20;
            compute_hashes();
            VIPTable.apply();
        }

        if (meta.vip_hit == 0) {
            drop_packet(PATH_NO_VIP);
        }
#if SYN_AUTH
        else if (hdr.tcp.isValid() && !Whitelist.apply().hit) {
            // model/decisions.py auth_outcome: SYN -> cookie SYN-ACK; a bare ACK
            // carrying cookie+1 -> learn the source ("auth", with the VIP's
            // current version, VipEntry.current) and reset; else drop.
            if (meta.phase == PHASE_TRANSIT || meta.phase == PHASE_SEALED) {
                meta.version = meta.new_version;
            } else {
                meta.version = meta.old_version;
            }
            if ((meta.tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN) {
                meta.path = PATH_AUTH_SYNACK;
                reply(TCP_SYN | TCP_ACK, meta.cookie, hdr.tcp.seqNo + 1);
            } else if ((meta.tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_ACK
                       && hdr.tcp.ackNo == meta.cookie + 1) {
                meta.path = PATH_AUTH_COOKIE_OK;
                meta.learned = LEARN_AUTH;
                reply(TCP_RST, hdr.tcp.ackNo, 0);
            } else {
                drop_packet(PATH_AUTH_DROP);
            }
        }
#endif
        else {
            // ConnTable: the stages in order, the first hit wins.
            if (ConnTable0.apply().hit) {
                meta.hit_stage = 0;
            }
#if STAGES > 1
            else if (ConnTable1.apply().hit) {
                meta.hit_stage = 1;
            }
#endif
#if STAGES > 2
            else if (ConnTable2.apply().hit) {
                meta.hit_stage = 2;
            }
#endif
#if STAGES > 3
            else if (ConnTable3.apply().hit) {
                meta.hit_stage = 3;
            }
#endif
#if STAGES > 4
            else if (ConnTable4.apply().hit) {
                meta.hit_stage = 4;
            }
#endif
#if STAGES > 5
            else if (ConnTable5.apply().hit) {
                meta.hit_stage = 5;
            }
#endif
#if STAGES > 6
            else if (ConnTable6.apply().hit) {
                meta.hit_stage = 6;
            }
#endif
#if STAGES > 7
            else if (ConnTable7.apply().hit) {
                meta.hit_stage = 7;
            }
#endif

            // consults_transit: a miss asks TransitTable after t_exec.
            if (meta.hit == 0 && (meta.phase == PHASE_TRANSIT || meta.phase == PHASE_SEALED)) {
                meta.consults = 1;
                bit<EPOCH_BITS> cell;
                meta.transit_hit = 1;
                TransitTable.read(cell, meta.transit_base + meta.bloom0);
                if (cell != meta.epoch) { meta.transit_hit = 0; }
#if BLOOM_HASHES > 1
                TransitTable.read(cell, meta.transit_base + meta.bloom1);
                if (cell != meta.epoch) { meta.transit_hit = 0; }
#endif
#if BLOOM_HASHES > 2
                TransitTable.read(cell, meta.transit_base + meta.bloom2);
                if (cell != meta.epoch) { meta.transit_hit = 0; }
#endif
#if BLOOM_HASHES > 3
                TransitTable.read(cell, meta.transit_base + meta.bloom3);
                if (cell != meta.epoch) { meta.transit_hit = 0; }
#endif
            }

            // drops_sealed: after t_seal a miss that hits TransitTable is dropped unlearned.
            if (meta.hit == 0 && meta.phase == PHASE_SEALED && meta.transit_hit == 1) {
                drop_packet(PATH_SEALED_TRANSIT_HIT);
            } else {
                // packet_version / miss_version.
                if (meta.hit == 1) {
                    meta.version = meta.hit_version;
                } else if (meta.consults == 1 && meta.transit_hit == 0) {
                    meta.version = meta.new_version;
                } else {
                    meta.version = meta.old_version;
                }
                // records_transit: between t_req and t_exec every miss is recorded.
                if (meta.hit == 0 && meta.phase == PHASE_RECORD) {
                    TransitTable.write(meta.transit_base + meta.bloom0, meta.epoch);
#if BLOOM_HASHES > 1
                    TransitTable.write(meta.transit_base + meta.bloom1, meta.epoch);
#endif
#if BLOOM_HASHES > 2
                    TransitTable.write(meta.transit_base + meta.bloom2, meta.epoch);
#endif
#if BLOOM_HASHES > 3
                    TransitTable.write(meta.transit_base + meta.bloom3, meta.epoch);
#endif
                }
                // learns_new ("syn" for a SYN, else "new"), learns_collision (a SYN that hits), FIN/RST.
                if (meta.hit == 0 && hdr.tcp.isValid() && (meta.tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN) {
                    meta.learned = LEARN_SYN;
                } else if (meta.hit == 0) {
                    meta.learned = LEARN_NEW;
                } else if (hdr.tcp.isValid() && (meta.tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN) {
                    meta.learned = LEARN_COLLISION;
                }
                if (hdr.tcp.isValid() && (meta.tcp_flags & (TCP_FIN | TCP_RST)) != 0) {
                    meta.learned = meta.learned | LEARN_END;
                }

                if (DIPPoolSize.apply().hit) {
                    hash(meta.dip_index, HashAlgorithm.crc16, 16w0,
                         { meta.proto, meta.dst_port, meta.src_port, meta.dst_ip, meta.src_ip }, meta.pool_size);
                    if (!DIPPoolTable.apply().hit) {
                        drop_packet(PATH_NO_DIP);
                    }
                } else {
                    drop_packet(PATH_NO_POOL);  // the version's pool was reclaimed
                }
            }
        }

        if (meta.from_cpu == 1) {
            // A harness packet goes back to the CPU, with the port it would have left by (the drop
            // port for a drop) and its report.
            hdr.packet_in.setValid();
            hdr.packet_in.tag = meta.tag;
            hdr.packet_in.egress_port = (bit<16>)std.egress_spec;
            std.egress_spec = CPU_PORT;
            hdr.report.setValid();
            hdr.report = {
                meta.tag, meta.outcome, meta.path, meta.learned,
                meta.src_ip, meta.dst_ip, meta.src_port, meta.dst_port, meta.proto,
                (bit<16>)meta.version, (bit<8>)meta.phase, (bit<8>)meta.consults, (bit<8>)meta.transit_hit,
                (bit<8>)meta.hit, meta.hit_stage, (bit<32>)meta.digest,
                meta.bucket0, meta.bucket1, meta.bucket2, meta.bucket3,
                meta.bucket4, meta.bucket5, meta.bucket6, meta.bucket7,
                meta.bloom0, meta.bloom1, meta.bloom2, meta.bloom3,
                meta.dip_index, meta.cookie };
        } else if (meta.learned != 0) {
            digest<report_t>(1, {
                meta.tag, meta.outcome, meta.path, meta.learned,
                meta.src_ip, meta.dst_ip, meta.src_port, meta.dst_port, meta.proto,
                meta.version, (bit<8>)meta.phase, (bit<8>)meta.consults, (bit<8>)meta.transit_hit,
                (bit<8>)meta.hit, meta.hit_stage, meta.digest,
                meta.bucket0, meta.bucket1, meta.bucket2, meta.bucket3,
                meta.bucket4, meta.bucket5, meta.bucket6, meta.bucket7,
                meta.bloom0, meta.bloom1, meta.bloom2, meta.bloom3,
                meta.dip_index, meta.cookie });
        }
    }
}

control SilkRoadEgress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t std) {
    apply { }
}

// ---------------------------------------------------------------- checksums and deparser

control SilkRoadComputeChecksum(inout headers_t hdr, inout meta_t meta) {
    apply {
        update_checksum(hdr.ipv4.isValid(),
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.diffserv, hdr.ipv4.totalLen, hdr.ipv4.identification,
              hdr.ipv4.flags, hdr.ipv4.fragOffset, hdr.ipv4.ttl, hdr.ipv4.protocol,
              hdr.ipv4.srcAddr, hdr.ipv4.dstAddr },
            hdr.ipv4.hdrChecksum, HashAlgorithm.csum16);
        update_checksum_with_payload(hdr.tcp.isValid(),
            { hdr.ipv4.srcAddr, hdr.ipv4.dstAddr, 8w0, hdr.ipv4.protocol, meta.l4_len,
              hdr.tcp.srcPort, hdr.tcp.dstPort, hdr.tcp.seqNo, hdr.tcp.ackNo, hdr.tcp.dataOffset, hdr.tcp.res,
              hdr.tcp.flags, hdr.tcp.window, hdr.tcp.urgentPtr },
            hdr.tcp.checksum, HashAlgorithm.csum16);
        update_checksum_with_payload(hdr.udp.isValid(),
            { hdr.ipv4.srcAddr, hdr.ipv4.dstAddr, 8w0, hdr.ipv4.protocol, meta.l4_len,
              hdr.udp.srcPort, hdr.udp.dstPort, hdr.udp.length },
            hdr.udp.checksum, HashAlgorithm.csum16);
    }
}

control SilkRoadDeparser(packet_out packet, in headers_t hdr) {
    apply {
        packet.emit(hdr.packet_in);
        packet.emit(hdr.report);
        packet.emit(hdr.ethernet);
        packet.emit(hdr.ipv4);
        packet.emit(hdr.tcp);
        packet.emit(hdr.udp);
    }
}

V1Switch(SilkRoadParser(), SilkRoadVerifyChecksum(), SilkRoadIngress(), SilkRoadEgress(),
         SilkRoadComputeChecksum(), SilkRoadDeparser()) main;
