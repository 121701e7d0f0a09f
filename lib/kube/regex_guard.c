/* The --pod-regex guard (regex_guard.h), from what fuzzing `netreel tap`'s arguments found. */
#include "kube/regex_guard.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* glibc's regcomp copies a repeated expression once per repetition, and repetitions stacked on
 * one another multiply ("z+++++..." doubles per '+', "((a{1,200}){1,200}){1,200}" is 8 million
 * copies; optional copies also cost their square in closures: "((a?){1,100}){1,100}" takes
 * 2.4 GB): a short POD_REGEX can take gigabytes, in the capture of every node (and
 * in `netreel tap`, which checks it first). This estimates the copies, saturating above the cap;
 * 256 (a{1,255} passes) keeps the worst found near 4 MB, and any pod regex one writes far
 * below it. */
#define REGEX_MAX_COST  256
#define REGEX_MAX_DEPTH 32

/* Anchors (^, $ and GNU's \b, \B, \<, \>, \`, \') are context constraints to glibc, which
 * works out the closures through them in exponential time: "(\b|\B)*" six times takes 10 s in
 * regcomp, "((\b|x)*(\B|y)*)*" 1.6 s, "(^|$)" a hundred times a minute, "((^|$)+){16}" longer
 * than 5 s. So at most 8 of them, and none under a repetition; a pod regex needs two or four
 * ("^web-", "(^|/)api($|-)"). */
#define REGEX_MAX_ANCHORS 8

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a + b > REGEX_MAX_COST ? REGEX_MAX_COST + 1 : a + b;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    return b && a > REGEX_MAX_COST / b ? REGEX_MAX_COST + 1 : a * b;
}

/* Skips a bracket expression from its '[' and returns what follows it. */
static const char *skip_bracket(const char *p)
{
    p++;
    if (*p == '^')
        p++;
    if (*p == ']')
        p++;
    while (*p && *p != ']') {
        if (p[0] == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
            char end = p[1];
            p += 2;
            while (*p && !(p[0] == end && p[1] == ']'))
                p++;
            if (*p)
                p += 2;
            continue;
        }
        p++;
    }
    return *p ? p + 1 : p;
}

/* The copies "{m}", "{m,}", "{m,n}" make, the bounds read as glibc reads them: a backslash in
 * the braces escapes the next character, and an escaped digit is a digit ("{0,10\\000}" is
 * {0,10000}, 790 MB). *after is what follows the '}'. */
static uint64_t interval_copies(const char *p, const char **after)
{
    uint64_t m = 0, n = 0;
    bool comma = false, upper = false;

    for (p++; *p && *p != '}'; p++) {
        char c = *p;
        if (c == '\\' && p[1])
            c = *++p;
        if (c >= '0' && c <= '9') {
            uint64_t *x = comma ? &n : &m;
            *x = *x > REGEX_MAX_COST ? REGEX_MAX_COST + 1 : *x * 10 + (uint64_t)(c - '0');
            upper = upper || comma;
        } else if (c == ',') {
            comma = true;
        }
    }
    *after = *p ? p + 1 : p;
    if (!comma)
        return m ? m : 1;
    if (!upper)
        return m + 1;
    return n > m ? n : m ? m : 1;
}

static bool is_anchor(const char *p)
{
    return *p == '^' || *p == '$' ||
           (p[0] == '\\' && (p[1] == 'b' || p[1] == 'B' || p[1] == '<' || p[1] == '>' ||
                             p[1] == '`' || p[1] == '\''));
}

/* Also refuses (cost above the cap) a repetition right after another ("a+*", "a??", "a{2}+"):
 * POSIX leaves it undefined, and glibc takes exponential time on it ("x??????????+++++++++"
 * runs for minutes under a cost of 512). Sets *anchors_bad when the anchors break the rule
 * above (the cost is then above the cap too). */
static uint64_t regex_cost(const char *re, bool *anchors_bad)
{
    uint64_t sum[REGEX_MAX_DEPTH + 1] = {0}, last[REGEX_MAX_DEPTH + 1] = {0};
    /* Whether the group at each depth holds an anchor, and whether its last element does. */
    bool anch[REGEX_MAX_DEPTH + 1] = {false}, last_anch[REGEX_MAX_DEPTH + 1] = {false};
    unsigned anchors = 0;
    int d = 0;
    const char *p = re;
    bool after_dup = false;

    *anchors_bad = false;
    while (*p) {
        bool dup = *p == '*' || *p == '+' || *p == '?' || *p == '{';
        if (dup && after_dup)
            return REGEX_MAX_COST + 1;
        if (dup && last_anch[d]) {
            *anchors_bad = true;
            return REGEX_MAX_COST + 1;
        }
        after_dup = dup;
        if (is_anchor(p)) {
            if (++anchors > REGEX_MAX_ANCHORS) {
                *anchors_bad = true;
                return REGEX_MAX_COST + 1;
            }
            anch[d] = last_anch[d] = true;
            sum[d] = sat_add(sum[d], last[d]);
            last[d] = 1;
            p += *p == '\\' ? 2 : 1;
            continue;
        }
        if (!dup)
            last_anch[d] = false;
        switch (*p) {
        case '(':
            if (d == REGEX_MAX_DEPTH)
                return REGEX_MAX_COST + 1;
            d++;
            sum[d] = last[d] = 0;
            anch[d] = last_anch[d] = false;
            p++;
            break;
        case ')':
            if (d > 0) {
                uint64_t group = sat_add(sum[d], last[d]);
                bool group_anch = anch[d];
                d--;
                sum[d] = sat_add(sum[d], last[d]);
                last[d] = group ? group : 1;
                anch[d] = anch[d] || group_anch;
                last_anch[d] = group_anch;
            } else { /* unmatched: an ordinary character to glibc, which can be repeated */
                sum[d] = sat_add(sum[d], last[d]);
                last[d] = 1;
            }
            p++;
            break;
        case '|': /* an empty alternative is a node too: "(||||...|a?){1,100}" took 1.7 GB */
            sum[d] = sat_add(sum[d], last[d] ? last[d] : 1);
            last[d] = 0;
            p++;
            break;
        case '+':
            last[d] = sat_mul(last[d] ? last[d] : 1, 2);
            p++;
            break;
        case '*':
        case '?': p++; break;
        case '{': last[d] = sat_mul(last[d] ? last[d] : 1, interval_copies(p, &p)); break;
        case '[':
            sum[d] = sat_add(sum[d], last[d]);
            last[d] = 1;
            p = skip_bracket(p);
            break;
        case '\\':
            sum[d] = sat_add(sum[d], last[d]);
            last[d] = 1;
            p += p[1] ? 2 : 1;
            break;
        default:
            sum[d] = sat_add(sum[d], last[d]);
            last[d] = 1;
            p++;
            break;
        }
    }
    while (d > 0) {
        uint64_t group = sat_add(sum[d], last[d]);
        d--;
        sum[d] = sat_add(sum[d], sat_add(last[d], group));
        last[d] = 0;
    }
    return sat_add(sum[0], last[0]);
}

/* True when the regex holds a back-reference (\1..\9, outside brackets): glibc matches those
 * by backtracking, and "(a*)(a*)(a*)(a*)\1\2\3\4b" takes longer than 10 s on a 30-character
 * name, a name anyone who may create a pod chooses. */
static bool has_backref(const char *p)
{
    while (*p) {
        if (*p == '[') {
            p = skip_bracket(p);
        } else if (*p == '\\') {
            if (p[1] >= '1' && p[1] <= '9')
                return true;
            p += p[1] ? 2 : 1;
        } else {
            p++;
        }
    }
    return false;
}

int kube_regex_check(const char *re, char *why, size_t whylen)
{
    bool anchors_bad;
    uint64_t cost;

    if (has_backref(re)) {
        snprintf(why, whylen,
                 "has a back-reference (\\1...\\9): every node's capture would match it by "
                 "backtracking, for seconds on a pod name made for it; netreel does without them");
        return -EINVAL;
    }
    cost = regex_cost(re, &anchors_bad);
    if (anchors_bad) {
        snprintf(why, whylen,
                 "repeats an anchor, or has more than %d (^, $, \\b, \\B, \\<, \\>, ...: every "
                 "node's capture would take seconds or minutes to compile it): simplify it",
                 REGEX_MAX_ANCHORS);
        return -EINVAL;
    }
    if (cost > REGEX_MAX_COST) {
        snprintf(why, whylen,
                 "repeats too much (a repetition right after another, \"a+*\", or nested ones, "
                 "\"(a{1,200}){1,200}\", make every node's capture build a huge matcher): "
                 "simplify it");
        return -EINVAL;
    }
    return 0;
}
