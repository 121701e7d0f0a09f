/* libFuzzer target for lib/util/pbwire.c (a string field's length as sent: how the store and
 * the hub tell a filter holding a NUL byte) and rpc_unpack's refusal of protobuf-c's field-0
 * quirk, on the messages that come off the wire. Whatever the bytes: a verdict in range, a
 * length inside the input, and for a message protobuf-c reads, a filter no longer than its
 * wire length. */
#include <stdint.h>
#include <string.h>

#include "netreel/v1/hub.pb-c.h"
#include "netreel/v1/store.pb-c.h"
#include "rpc/call.h"
#include "util/pbwire.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const ProtobufCMessageDescriptor *const descs[] = {
        &netreel__v1__snapshot_request__descriptor,
        &netreel__v1__store_chunk__descriptor,
        &netreel__v1__store_stats__descriptor,
        &netreel__v1__packet_batch__descriptor,
    };
    Netreel__V1__SnapshotRequest *req;
    size_t flen = 0;
    int r;

    for (uint32_t field = 1; field <= 6; field++) {
        size_t n = SIZE_MAX;
        r = nr_pb_field_len(data, size, field, &n);
        CHECK(r >= -1 && r <= 1);
        if (r == 1)
            CHECK(n <= size);
    }
    r = nr_pb_field_len(data, size, 3, &flen);
    req = netreel__v1__snapshot_request__unpack(NULL, size, data);
    if (req) {
        if (r == 1 && req->filter)
            CHECK(strlen(req->filter) <= flen);
        netreel__v1__snapshot_request__free_unpacked(req, NULL);
    }
    for (size_t i = 0; i < sizeof(descs) / sizeof(descs[0]); i++) {
        ProtobufCMessage *m = rpc_unpack(descs[i], data, size);
        if (m) {
            /* What rpc_unpack lets through packs to bytes protobuf-c reads back. */
            size_t len = protobuf_c_message_get_packed_size(m);
            uint8_t *buf = malloc(len ? len : 1);
            CHECK(buf != NULL);
            CHECK(protobuf_c_message_pack(m, buf) == len);
            ProtobufCMessage *again = protobuf_c_message_unpack(descs[i], NULL, len, buf);
            CHECK(again != NULL);
            protobuf_c_message_free_unpacked(again, NULL);
            free(buf);
            protobuf_c_message_free_unpacked(m, NULL);
        }
    }
    return 0;
}
