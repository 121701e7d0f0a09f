/* Parsing of what users type in flags and Helm values: durations, sizes and RFC 3339 times.
 * Each parser reports a clear, one-line message naming the input and what is wrong with it. */
#ifndef NR_UTIL_PARSE_H
#define NR_UTIL_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Durations as Go and Kubernetes write them: a sequence of <decimal><unit> with units ns, us
 * (or µs), ms, s, m, h, d (24h); "1h30m", "1.5s", "300ms". Units are lower-case only. A
 * fraction needs a digit on each side of the "." and is cut (not rounded) to whole nanoseconds.
 * "0" alone is allowed; any other number needs a unit. No sign, no spaces. Returns 0 and *ns,
 * or -EINVAL (malformed) / -ERANGE (does not fit in int64 nanoseconds) with a message in err.
 * err may be NULL; a message longer than errlen is cut, always NUL-terminated; err is written
 * only on failure, and *ns only on success. A malformed input is -EINVAL even if its number is
 * also too large. */
int nr_parse_duration(const char *s, int64_t *ns, char *err, size_t errlen);

/* Sizes: <decimal>[unit]. Decimal units K/KB, M/MB, G/GB, T/TB (also lower-case k, kB); binary
 * units Ki/KiB, Mi/MiB, Gi/GiB, Ti/TiB; B or no unit for bytes. Other spellings ("kb", "Mb",
 * "m", "KIB") are refused: lower-case b reads as bits and m as milli. A fraction is allowed
 * ("1.5GiB") and rounded down to whole bytes. Returns 0 / -EINVAL / -ERANGE like above. */
int nr_parse_size(const char *s, uint64_t *bytes, char *err, size_t errlen);

/* RFC 3339 date-time: "2026-11-26T05:08:19Z", "2026-11-26T05:08:19.123456789+01:00"; 't', 'z'
 * and a space for 'T' are accepted; fractions up to 9 digits. Every field is range-checked (the
 * day against its month, leap years included); second 60 (a leap second) reads as the first
 * second of the next minute. The time zone is required. Returns 0 and *ns (Unix epoch, UTC), or
 * -EINVAL / -ERANGE (outside 1677-09-21T00:12:43.145224192Z .. 2262-04-11T23:47:16.854775807Z)
 * with a message in err, as above. */
int nr_parse_time(const char *s, int64_t *ns, char *err, size_t errlen);

/* Formats ns since the epoch as UTC RFC 3339 with `frac` fractional digits (0, 3, 6 or 9),
 * cut rather than rounded: "2026-11-26T05:08:19.123Z". Returns the length written, -ENOSPC if
 * buf is too small (31 bytes always suffice), or -EINVAL for another frac. */
int nr_format_time(int64_t ns, int frac, char *buf, size_t len);

/* Formats ns as a short duration nr_parse_duration() reads back exactly: days, hours and
 * minutes, then the rest in the largest unit it reaches with a fraction ("1d1h30m", "1h500ms",
 * "1.5s", "250ms", "1.5us"); 0 is "0s". Returns the length written, -ENOSPC (32 bytes always
 * suffice), or -EINVAL for a negative ns, which the parser would not read. */
int nr_format_duration(int64_t ns, char *buf, size_t len);

/* Formats a byte count for people, binary units up to TiB with one decimal, rounded down:
 * "512B", "1.5KiB", "500.0MiB", "1023.9KiB". Returns the length written or -ENOSPC. */
int nr_format_size(uint64_t bytes, char *buf, size_t len);

/* The value of one hexadecimal digit (0-9, a-f, A-F), or -1. */
int nr_hex_digit(char c);

#endif
