/* Classic pcap, nanosecond flavour (see pcap.h): the file header and one record at a time,
 * appended to a bounded buffer like the pcapng encoders. */
#include "pcapng/pcap.h"

#include <errno.h>
#include <string.h>

#include "pcapng/pcapng.h"

#define NS_PER_S INT64_C(1000000000)

int pcapng_pcap_header_append(struct nr_buf *b, uint16_t link_type, uint32_t snaplen)
{
    uint8_t *p;
    int rc;

    if (snaplen == 0)
        return -EINVAL;
    rc = nr_buf_reserve(b, PCAP_FILE_HEADER_LEN);
    if (rc < 0)
        return rc;
    p = b->data + b->len;
    pcapng_put32(p, PCAP_NSEC_MAGIC);
    p[4] = 2; /* version 2.4 */
    p[5] = 0;
    p[6] = 4;
    p[7] = 0;
    pcapng_put32(p + 8, 0);  /* thiszone: timestamps are UTC */
    pcapng_put32(p + 12, 0); /* sigfigs */
    pcapng_put32(p + 16, snaplen);
    pcapng_put32(p + 20, link_type);
    b->len += PCAP_FILE_HEADER_LEN;
    return 0;
}

int pcapng_pcap_record_append(struct nr_buf *b, int64_t ts_ns, const void *data, uint32_t caplen,
                              uint32_t origlen)
{
    int64_t sec = ts_ns / NS_PER_S;
    uint8_t *p;
    int rc;

    /* Readers refuse a record longer than the largest snaplen as a corrupt file. */
    if (ts_ns < 0 || sec > UINT32_MAX || caplen > origlen || caplen > PCAPNG_MAX_SNAPLEN ||
        (data == NULL && caplen > 0))
        return -EINVAL;
    rc = nr_buf_reserve(b, PCAP_RECORD_HEADER_LEN + (size_t)caplen);
    if (rc < 0)
        return rc;
    p = b->data + b->len;
    pcapng_put32(p, (uint32_t)sec);
    pcapng_put32(p + 4, (uint32_t)(ts_ns % NS_PER_S));
    pcapng_put32(p + 8, caplen);
    pcapng_put32(p + 12, origlen);
    if (caplen)
        memcpy(p + PCAP_RECORD_HEADER_LEN, data, caplen);
    b->len += PCAP_RECORD_HEADER_LEN + (size_t)caplen;
    return 0;
}
