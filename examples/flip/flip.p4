/*
 * Example (b): a load balancer with a connection table learned from digests.
 *
 * ConnTable maps a connection's 5-tuple to its DIP. A packet that misses it is
 * load-balanced like example (a), hash mod the VIP's pool size, and sends a
 * `learn` digest with the DIP it got; the controller installs that entry. A pool
 * change flips the VIP to the new pool at once, with no transit phase: a connection
 * whose digest the controller has not acted on yet is moved. The slower the
 * digests (the nemesis delays them), the wider that window.
 */

#include "../include/l4lb.p4"

struct learn_t {
    bit<32> src_ip;
    bit<32> dst_ip;
    bit<16> src_port;
    bit<16> dst_port;
    bit<8>  proto;
    bit<32> dip_ip;
    bit<16> dip_port;
}

control LbIngress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t std) {
    action drop() {
        mark_to_drop(std);
    }

    action rewrite_dip(bit<32> ip, bit<16> port) {
        hdr.ipv4.dstAddr = ip;
        hdr.l4.dstPort = port;
        std.egress_spec = SERVER_PORT;
    }

    table ConnTable {
        key = {
            hdr.ipv4.srcAddr: exact @name("src_ip");
            hdr.ipv4.dstAddr: exact @name("dst_ip");
            hdr.l4.srcPort: exact @name("src_port");
            hdr.l4.dstPort: exact @name("dst_port");
            hdr.ipv4.protocol: exact @name("proto");
        }
        actions = { rewrite_dip; @defaultonly NoAction; }
        default_action = NoAction();
        size = 65536;
    }

    action set_pool_size(bit<16> size) {
        meta.pool_size = size;
    }

    table VIPTable {
        key = {
            hdr.ipv4.dstAddr: exact @name("ip");
            hdr.l4.dstPort: exact @name("port");
            hdr.ipv4.protocol: exact @name("proto");
        }
        actions = { set_pool_size; @defaultonly drop; }
        default_action = drop();
        size = 1024;
    }

    table DIPPoolTable {
        key = {
            hdr.ipv4.dstAddr: exact @name("ip");
            hdr.l4.dstPort: exact @name("port");
            hdr.ipv4.protocol: exact @name("proto");
            meta.dip_index: exact @name("index");
        }
        actions = { rewrite_dip; @defaultonly drop; }
        default_action = drop();
        size = 65536;
    }

    apply {
        if (!hdr.l4.isValid()) {
            drop();
            return;
        }
        if (ConnTable.apply().hit) {
            return;
        }
        bit<32> vip_ip = hdr.ipv4.dstAddr;
        bit<16> vip_port = hdr.l4.dstPort;
        if (VIPTable.apply().hit) {
            hash(meta.dip_index, HashAlgorithm.crc16, 16w0,
                 { hdr.ipv4.srcAddr, hdr.ipv4.dstAddr, hdr.l4.srcPort, hdr.l4.dstPort, hdr.ipv4.protocol },
                 meta.pool_size);
            if (DIPPoolTable.apply().hit) {
                digest<learn_t>(1, { hdr.ipv4.srcAddr, vip_ip, hdr.l4.srcPort, vip_port, hdr.ipv4.protocol,
                                     hdr.ipv4.dstAddr, hdr.l4.dstPort });
            }
        }
    }
}

V1Switch(LbParser(), LbVerifyChecksum(), LbIngress(), LbEgress(), LbComputeChecksum(), LbDeparser()) main;
