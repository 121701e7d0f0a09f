/* lib/rpc rpc_unpack: protobuf-c keeps an over-long tag of field 0 ("80 00") as an unknown field
 * and packs it as "00", which no parser reads back; rpc_unpack refuses such a message, also
 * deep inside (found by fuzz_proto_messages: one store could make the hub's ClusterStatus
 * unreadable for every store). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "netreel/v1/store.pb-c.h"
#include "rpc/call.h"

static void refuses_field_zero_at_any_depth(void **state)
{
    /* StoreStats{ node: "n" } then the bad unknown field */
    static const uint8_t top[] = {0x0a, 0x01, 'n', 0x80, 0x00, 0x00};
    /* captures (field 9) holding a CaptureStats with the bad field */
    static const uint8_t deep[] = {0x0a, 0x01, 'n', 0x4a, 0x03, 0x80, 0x00, 0x00};
    static const uint8_t good[] = {0x0a, 0x01, 'n', 0xf8, 0x07, 0x01}; /* unknown field 127 */
    ProtobufCMessage *m;

    (void)state;
    m = protobuf_c_message_unpack(&netreel__v1__store_stats__descriptor, NULL, sizeof(top), top);
    if (m) { /* protobuf-c takes it: the reason for the check */
        protobuf_c_message_free_unpacked(m, NULL);
        assert_null(rpc_unpack(&netreel__v1__store_stats__descriptor, top, sizeof(top)));
    }
    m = protobuf_c_message_unpack(&netreel__v1__store_stats__descriptor, NULL, sizeof(deep), deep);
    if (m) {
        protobuf_c_message_free_unpacked(m, NULL);
        assert_null(rpc_unpack(&netreel__v1__store_stats__descriptor, deep, sizeof(deep)));
    }
    m = rpc_unpack(&netreel__v1__store_stats__descriptor, good, sizeof(good));
    assert_non_null(m);
    protobuf_c_message_free_unpacked(m, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refuses_field_zero_at_any_depth),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
