/* The Prometheus text format (0.0.4): names checked, help and label values escaped, numbers
 * printed exactly. Every call writes whole lines or nothing, so a failure leaves valid text. */
#include "util/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*. */
static bool valid_metric_name(const char *s)
{
    if (!s || !(is_alpha(*s) || *s == '_' || *s == ':'))
        return false;
    for (s++; *s; s++)
        if (!(is_alpha(*s) || is_digit(*s) || *s == '_' || *s == ':'))
            return false;
    return true;
}

/* Label names: [a-zA-Z_][a-zA-Z0-9_]*; "__" starts names Prometheus keeps for itself. */
static bool valid_label_name(const char *s)
{
    if (!s || !(is_alpha(*s) || *s == '_') || strncmp(s, "__", 2) == 0)
        return false;
    for (s++; *s; s++)
        if (!(is_alpha(*s) || is_digit(*s) || *s == '_'))
            return false;
    return true;
}

static int check_labels(const struct nr_metrics_label *labels)
{
    for (size_t i = 0; labels && labels[i].name; i++) {
        if (!valid_label_name(labels[i].name) || !labels[i].value)
            return -EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(labels[i].name, labels[j].name) == 0)
                return -EINVAL;
    }
    return 0;
}

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 when the bytes there are not one
 * (overlong forms, surrogates and code points past U+10FFFF included). Stops at a NUL. */
static size_t utf8_seq_len(const unsigned char *s)
{
    unsigned c = s[0];

    if (c < 0x80)
        return 1;
    if (c < 0xC2 || c > 0xF4 || (s[1] & 0xC0) != 0x80)
        return 0;
    if (c < 0xE0)
        return 2;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0) || (s[2] & 0xC0) != 0x80)
        return 0;
    if (c < 0xF0)
        return 3;
    if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90) || (s[3] & 0xC0) != 0x80)
        return 0;
    return 4;
}

/* Appends s with backslash and newline escaped, and double quote too when `quote`. Prometheus
 * refuses invalid UTF-8, so such bytes become U+FFFD rather than cost the whole scrape. */
static int append_escaped(struct nr_buf *b, const char *str, bool quote)
{
    const unsigned char *s = (const unsigned char *)str;
    const unsigned char *run = s; /* bytes not yet appended that need no escape */
    int rc = 0;

    while (*s && rc == 0) {
        size_t n = utf8_seq_len(s);
        const char *esc = NULL;

        if (n == 0)
            esc = "\xEF\xBF\xBD";
        else if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (*s == '"' && quote)
            esc = "\\\"";
        if (!esc) {
            s += n;
            continue;
        }
        rc = nr_buf_append(b, run, (size_t)(s - run));
        if (rc == 0)
            rc = nr_buf_append(b, esc, strlen(esc));
        s++;
        run = s;
    }
    if (rc == 0)
        rc = nr_buf_append(b, run, (size_t)(s - run));
    return rc;
}

static int append_str(struct nr_buf *b, const char *s)
{
    return nr_buf_append(b, s, strlen(s));
}

/* Records a failure: the buffer goes back to where the call began. */
static int fail(struct nr_metrics *m, size_t start, int err)
{
    m->out->len = start;
    m->err = err;
    return err;
}

void nr_metrics_init(struct nr_metrics *m, struct nr_buf *out)
{
    m->out = out;
    m->err = 0;
    m->family[0] = '\0';
}

int nr_metrics_family(struct nr_metrics *m, const char *name, enum nr_metrics_type type,
                      const char *help)
{
    static const char *const type_names[] = {
        [NR_METRICS_COUNTER] = "counter",
        [NR_METRICS_GAUGE] = "gauge",
        [NR_METRICS_UNTYPED] = "untyped",
    };
    size_t start = m->out->len;
    int rc = 0;

    if (m->err)
        return m->err;
    if (!valid_metric_name(name) || strlen(name) > NR_METRICS_NAME_MAX ||
        (unsigned)type >= sizeof(type_names) / sizeof(type_names[0]))
        return fail(m, start, -EINVAL);
    if (help) {
        rc = append_str(m->out, "# HELP ");
        if (rc == 0)
            rc = append_str(m->out, name);
        if (rc == 0)
            rc = append_str(m->out, " ");
        if (rc == 0)
            rc = append_escaped(m->out, help, false);
        if (rc == 0)
            rc = append_str(m->out, "\n");
    }
    if (rc == 0)
        rc = append_str(m->out, "# TYPE ");
    if (rc == 0)
        rc = append_str(m->out, name);
    if (rc == 0)
        rc = append_str(m->out, " ");
    if (rc == 0)
        rc = append_str(m->out, type_names[type]);
    if (rc == 0)
        rc = append_str(m->out, "\n");
    if (rc != 0)
        return fail(m, start, rc);
    snprintf(m->family, sizeof(m->family), "%s", name);
    return 0;
}

/* Writes name{labels} value\n with the value already formatted. */
static int write_sample(struct nr_metrics *m, const struct nr_metrics_label *labels,
                        const char *value)
{
    size_t start = m->out->len;
    int rc;

    if (m->err)
        return m->err;
    if (!m->family[0] || check_labels(labels) != 0)
        return fail(m, start, -EINVAL);
    rc = append_str(m->out, m->family);
    for (size_t i = 0; labels && labels[i].name && rc == 0; i++) {
        rc = append_str(m->out, i == 0 ? "{" : ",");
        if (rc == 0)
            rc = append_str(m->out, labels[i].name);
        if (rc == 0)
            rc = append_str(m->out, "=\"");
        if (rc == 0)
            rc = append_escaped(m->out, labels[i].value, true);
        if (rc == 0)
            rc = append_str(m->out, "\"");
    }
    if (rc == 0 && labels && labels[0].name)
        rc = append_str(m->out, "}");
    if (rc == 0)
        rc = append_str(m->out, " ");
    if (rc == 0)
        rc = append_str(m->out, value);
    if (rc == 0)
        rc = append_str(m->out, "\n");
    if (rc != 0)
        return fail(m, start, rc);
    return 0;
}

int nr_metrics_u64(struct nr_metrics *m, const struct nr_metrics_label *labels, uint64_t value)
{
    char text[24];

    snprintf(text, sizeof(text), "%" PRIu64, value);
    return write_sample(m, labels, text);
}

int nr_metrics_double(struct nr_metrics *m, const struct nr_metrics_label *labels, double value)
{
    char text[32];

    if (isnan(value))
        snprintf(text, sizeof(text), "NaN");
    else if (isinf(value))
        snprintf(text, sizeof(text), "%s", value > 0 ? "+Inf" : "-Inf");
    else
        snprintf(text, sizeof(text), "%.17g", value);
    return write_sample(m, labels, text);
}
