/* lib/util/pbwire: a string field's length as sent, NUL bytes and all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/pbwire.h"

static void finds_the_last_occurrence_of_a_field(void **state)
{
    /* since_ns=5 (varint), filter="tcp\0x" (5 bytes), snaplen fixed32-ish field 6, filter="ab" */
    static const uint8_t msg[] = {0x08, 0x05, 0x1a, 0x05, 't', 'c',  'p',  0,   'x',
                                  0x35, 1,    2,    3,    4,   0x1a, 0x02, 'a', 'b'};
    size_t n = 0;

    (void)state;
    assert_int_equal(nr_pb_field_len(msg, 9, 3, &n), 1);
    assert_int_equal(n, 5);
    assert_int_equal(nr_pb_field_len(msg, sizeof(msg), 3, &n), 1);
    assert_int_equal(n, 2);
    assert_int_equal(nr_pb_field_len(msg, sizeof(msg), 4, &n), 0);
    assert_int_equal(nr_pb_field_len(msg, 0, 3, &n), 0);
}

static void refuses_what_is_not_wire_data(void **state)
{
    static const uint8_t overlong[] = {0x1a, 0x09, 'a'};  /* length past the end */
    static const uint8_t torn_varint[] = {0x08, 0x80};    /* varint never ends */
    static const uint8_t field_zero[] = {0x02, 0x00};     /* field number 0 */
    static const uint8_t group[] = {0x0b, 0x0c};          /* wire type 3 */
    static const uint8_t short_fixed[] = {0x09, 1, 2, 3}; /* 64-bit with 3 bytes */
    static const uint8_t ten_bytes[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    size_t n;

    (void)state;
    assert_int_equal(nr_pb_field_len(overlong, sizeof(overlong), 3, &n), -1);
    assert_int_equal(nr_pb_field_len(torn_varint, sizeof(torn_varint), 3, &n), -1);
    assert_int_equal(nr_pb_field_len(field_zero, sizeof(field_zero), 3, &n), -1);
    assert_int_equal(nr_pb_field_len(group, sizeof(group), 3, &n), -1);
    assert_int_equal(nr_pb_field_len(short_fixed, sizeof(short_fixed), 3, &n), -1);
    assert_int_equal(nr_pb_field_len(ten_bytes, sizeof(ten_bytes), 3, &n), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(finds_the_last_occurrence_of_a_field),
        cmocka_unit_test(refuses_what_is_not_wire_data),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
