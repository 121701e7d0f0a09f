/* libFuzzer target for unpacking every message of the public API (netreel.v1 and
 * grpc.health.v1) with protobuf-c: the first byte picks the message; what unpacks must pack
 * back to a message of the size protobuf-c computes. */
#include <stdint.h>
#include <stdlib.h>

#include "grpc/health/v1/health.pb-c.h"
#include "netreel/v1/common.pb-c.h"
#include "netreel/v1/hub.pb-c.h"
#include "netreel/v1/store.pb-c.h"

static const ProtobufCMessageDescriptor *const descs[] = {
    &netreel__v1__interface__descriptor,
    &netreel__v1__pod_name__descriptor,
    &netreel__v1__capture_counters__descriptor,
    &netreel__v1__snapshot_request__descriptor,
    &netreel__v1__packet_batch__descriptor,
    &netreel__v1__ingest_ack__descriptor,
    &netreel__v1__window_header__descriptor,
    &netreel__v1__interface_stats__descriptor,
    &netreel__v1__store_summary__descriptor,
    &netreel__v1__store_chunk__descriptor,
    &netreel__v1__stats_request__descriptor,
    &netreel__v1__capture_stats__descriptor,
    &netreel__v1__deletion_count__descriptor,
    &netreel__v1__store_stats__descriptor,
    &netreel__v1__store_result__descriptor,
    &netreel__v1__snapshot_summary__descriptor,
    &netreel__v1__file_chunk__descriptor,
    &netreel__v1__status_request__descriptor,
    &netreel__v1__store_status__descriptor,
    &netreel__v1__cluster_status__descriptor,
    &grpc__health__v1__health_check_request__descriptor,
    &grpc__health__v1__health_check_response__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ProtobufCMessageDescriptor *desc;
    ProtobufCMessage *m;

    if (size < 1)
        return 0;
    desc = descs[data[0] % (sizeof(descs) / sizeof(descs[0]))];
    m = protobuf_c_message_unpack(desc, NULL, size - 1, data + 1);
    if (!m)
        return 0;
    size_t need = protobuf_c_message_get_packed_size(m);
    uint8_t *out = malloc(need ? need : 1);
    if (out && protobuf_c_message_pack(m, out) != need)
        abort();
    free(out);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
