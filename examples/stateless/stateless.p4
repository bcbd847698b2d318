/*
 * Example (a): a stateless L4 load balancer.
 *
 * A packet to a VIP goes to pool[hash(5-tuple) mod |pool|], rewritten to that
 * DIP and sent out of the server port. Nothing remembers a connection, so any
 * change of the pool's size moves live connections: PCC breaks at the first
 * pool update. silkcheck's black-box target should find that within seconds.
 */

#include "../include/l4lb.p4"

control LbIngress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t std) {
    action drop() {
        mark_to_drop(std);
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

    action rewrite_dip(bit<32> ip, bit<16> port) {
        hdr.ipv4.dstAddr = ip;
        hdr.l4.dstPort = port;
        std.egress_spec = SERVER_PORT;
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
        if (VIPTable.apply().hit) {
            hash(meta.dip_index, HashAlgorithm.crc16, 16w0,
                 { hdr.ipv4.srcAddr, hdr.ipv4.dstAddr, hdr.l4.srcPort, hdr.l4.dstPort, hdr.ipv4.protocol },
                 meta.pool_size);
            DIPPoolTable.apply();
        }
    }
}

V1Switch(LbParser(), LbVerifyChecksum(), LbIngress(), LbEgress(), LbComputeChecksum(), LbDeparser()) main;
