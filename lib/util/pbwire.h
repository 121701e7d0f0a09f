/* A look at a protobuf message's wire form, for what protobuf-c's unpacked structs cannot
 * tell: a string field's length on the wire (protobuf-c hands strings over NUL-terminated, so a
 * string holding a NUL byte looks shorter than it was sent; a server that acts on the text, a
 * BPF filter, must refuse it rather than apply the part before the NUL), and where a large
 * bytes field lies, to use it in place instead of in protobuf-c's copy. */
#ifndef NR_UTIL_PBWIRE_H
#define NR_UTIL_PBWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a length-delimited field lies in a message: its tag at start, its value at value. */
struct nr_pb_field {
    size_t start, value, len;
};

/* Scans the top level of msg for length-delimited occurrences of field number `field`: returns
 * how many (f: the last, the one a parser keeps), or -1 when msg is not well-formed protobuf
 * wire data. */
int nr_pb_field_find(const uint8_t *msg, size_t len, uint32_t field, struct nr_pb_field *f);

/* Finds the last length-delimited occurrence of field number `field` in the top level of msg
 * (the one a parser keeps) and sets *flen. Returns 1 when found, 0 when not, -1 when msg is not
 * well-formed protobuf wire data. */
int nr_pb_field_len(const uint8_t *msg, size_t len, uint32_t field, size_t *flen);

/* Whether the string protobuf-c unpacked as `str` from field `field` of msg was cut short by a
 * NUL byte: its wire length is not its C length. */
bool nr_pb_string_has_nul(const uint8_t *msg, size_t len, uint32_t field, const char *str);

#endif
