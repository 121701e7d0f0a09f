/* Tests for lib/kube/selector.c: kubectl's -l syntax parses to the requirements it says, each
 * operator matches "k=v,k=v" labels as Kubernetes does (the "Labels and Selectors" page of
 * kubernetes.io: `!=` and `notin` also select objects without the key), and everything else is
 * refused with a reason that names it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kube/selector.h"
#include "util/error.h"

/* 40 KiB each: kept off the stack. */
static struct kube_label_selector sel, again;

static void parse_ok(const char *text)
{
    char err[256] = "";
    int rc = kube_label_selector_parse(text, &sel, err, sizeof(err));

    if (rc != 0)
        fail_msg("\"%s\": rc %d: %s", text, rc, err);
}

static void parse_bad(const char *text, const char *want)
{
    char err[512] = "";
    int rc = kube_label_selector_parse(text, &sel, err, sizeof(err));

    if (rc != NR_EPARSE)
        fail_msg("\"%.80s\": rc %d, want NR_EPARSE", text, rc);
    if (strstr(err, want) == NULL)
        fail_msg("\"%.80s\": error \"%s\" lacks \"%s\"", text, err, want);
    /* Without a buffer for the reason, the same verdict. */
    assert_int_equal(kube_label_selector_parse(text, &again, NULL, 0), NR_EPARSE);
}

static bool matches(const char *text, const char *labels)
{
    parse_ok(text);
    return kube_label_selector_match(&sel, labels);
}

static void req_is(size_t i, enum kube_sel_op op, const char *key, size_t n_vals, ...)
{
    va_list ap;

    assert_true(i < sel.n);
    assert_int_equal(sel.reqs[i].op, op);
    assert_string_equal(sel.reqs[i].key, key);
    assert_int_equal(sel.reqs[i].n_vals, n_vals);
    va_start(ap, n_vals);
    for (size_t k = 0; k < n_vals; k++)
        assert_string_equal(sel.reqs[i].vals[k], va_arg(ap, const char *));
    va_end(ap);
}

static void operators_parse(void **state)
{
    (void)state;
    parse_ok("app");
    assert_int_equal(sel.n, 1);
    req_is(0, KUBE_SEL_EXISTS, "app", 0);
    parse_ok("!app");
    req_is(0, KUBE_SEL_NOT_EXISTS, "app", 0);
    parse_ok("app=web");
    req_is(0, KUBE_SEL_IN, "app", 1, "web");
    parse_ok("app==web");
    req_is(0, KUBE_SEL_IN, "app", 1, "web");
    parse_ok("app!=web");
    req_is(0, KUBE_SEL_NOT_IN, "app", 1, "web");
    parse_ok("app in (web,db)");
    req_is(0, KUBE_SEL_IN, "app", 2, "web", "db");
    parse_ok("app notin (web,db,cache)");
    req_is(0, KUBE_SEL_NOT_IN, "app", 3, "web", "db", "cache");

    /* Several, all must hold; in the order written. */
    parse_ok("a,!b,c=1,d==2,e!=3,f in (4),g notin (5,6)");
    assert_int_equal(sel.n, 7);
    req_is(0, KUBE_SEL_EXISTS, "a", 0);
    req_is(1, KUBE_SEL_NOT_EXISTS, "b", 0);
    req_is(2, KUBE_SEL_IN, "c", 1, "1");
    req_is(3, KUBE_SEL_IN, "d", 1, "2");
    req_is(4, KUBE_SEL_NOT_IN, "e", 1, "3");
    req_is(5, KUBE_SEL_IN, "f", 1, "4");
    req_is(6, KUBE_SEL_NOT_IN, "g", 2, "5", "6");

    /* Empty values, as Kubernetes' parser takes them: "x=", "x in ()", "x in (a,)". */
    parse_ok("x=");
    req_is(0, KUBE_SEL_IN, "x", 1, "");
    parse_ok("x!=,y");
    req_is(0, KUBE_SEL_NOT_IN, "x", 1, "");
    req_is(1, KUBE_SEL_EXISTS, "y", 0);
    parse_ok("x in ()");
    req_is(0, KUBE_SEL_IN, "x", 1, "");
    parse_ok("x in (a,)");
    req_is(0, KUBE_SEL_IN, "x", 2, "a", "");

    /* "in" and "notin" as keys and values are words like any other. */
    parse_ok("in in (in,notin)");
    req_is(0, KUBE_SEL_IN, "in", 2, "in", "notin");
    parse_ok("notin");
    req_is(0, KUBE_SEL_EXISTS, "notin", 0);
    parse_ok("index=notin");
    req_is(0, KUBE_SEL_IN, "index", 1, "notin");
    parse_ok("a in(b)");
    req_is(0, KUBE_SEL_IN, "a", 1, "b");
    parse_ok("a notin(b)");
    req_is(0, KUBE_SEL_NOT_IN, "a", 1, "b");

    /* The same text parses to the same structure (the fuzz target relies on this). */
    parse_ok("a,!b,c in (x,y)");
    assert_int_equal(kube_label_selector_parse("a,!b,c in (x,y)", &again, NULL, 0), 0);
    assert_memory_equal(&sel, &again, sizeof(sel));
}

static void operators_match(void **state)
{
    const char *l = "app=web,tier=frontend,env=prod";

    (void)state;
    /* exists / !exists */
    assert_true(matches("app", l));
    assert_false(matches("team", l));
    assert_false(matches("!app", l));
    assert_true(matches("!team", l));
    /* = and == */
    assert_true(matches("app=web", l));
    assert_true(matches("app==web", l));
    assert_false(matches("app=db", l));
    assert_false(matches("app==db", l));
    assert_false(matches("app=we", l));
    assert_false(matches("app=web2", l));
    assert_false(matches("team=web", l));
    /* != */
    assert_false(matches("app!=web", l));
    assert_true(matches("app!=db", l));
    /* in / notin */
    assert_true(matches("tier in (backend,frontend)", l));
    assert_false(matches("tier in (backend,cache)", l));
    assert_false(matches("tier notin (backend,frontend)", l));
    assert_true(matches("tier notin (backend,cache)", l));
    /* Values compare whole and case-sensitively. */
    assert_false(matches("app=Web", l));
    assert_false(matches("App=web", l));
    assert_false(matches("tier in (front,frontend2)", l));
    /* AND */
    assert_true(matches("app=web,tier=frontend", l));
    assert_false(matches("app=web,tier=backend", l));
    assert_true(matches("app=web,tier!=backend,!team,env in (prod,qa)", l));
    assert_false(matches("app=web,tier!=backend,!team,env in (dev,qa)", l));
    /* The same key twice: both must hold. */
    assert_false(matches("app=web,app=db", l));
    assert_true(matches("app,app=web", l));
    /* An empty value matches a label whose value is empty, and only that. */
    assert_true(matches("x=", "x=,y=1"));
    assert_false(matches("x=", "y=1"));
    assert_false(matches("x=", "x=1"));
    assert_true(matches("x in ()", "x="));
    assert_true(matches("x!=", "x=1"));
    assert_false(matches("x!=", "x="));
}

/* The examples of the "Labels and Selectors" page, with what it says each one selects. */
static void kubernetes_examples(void **state)
{
    const char *prod_fe = "environment=production,tier=frontend";
    const char *qa_be = "environment=qa,tier=backend,partition=customerA";
    const char *dev = "environment=dev";
    const char *none = "";

    (void)state;
    /* "environment = production": key environment, value production. */
    assert_true(matches("environment = production", prod_fe));
    assert_false(matches("environment = production", qa_be));
    /* "tier != frontend": tier other than frontend, and every object without a tier label. */
    assert_false(matches("tier != frontend", prod_fe));
    assert_true(matches("tier != frontend", qa_be));
    assert_true(matches("tier != frontend", dev));
    assert_true(matches("tier != frontend", none));
    assert_true(matches("tier != frontend", NULL));
    /* "environment=production,tier=frontend" */
    assert_true(matches("environment=production,tier=frontend", prod_fe));
    assert_false(matches("environment=production,tier=frontend", qa_be));
    /* "environment in (production, qa)" */
    assert_true(matches("environment in (production, qa)", prod_fe));
    assert_true(matches("environment in (production, qa)", qa_be));
    assert_false(matches("environment in (production, qa)", dev));
    assert_false(matches("environment in (production, qa)", none));
    /* "tier notin (frontend, backend)": other tiers, and objects without tier. */
    assert_false(matches("tier notin (frontend, backend)", prod_fe));
    assert_false(matches("tier notin (frontend, backend)", qa_be));
    assert_true(matches("tier notin (frontend, backend)", dev));
    assert_true(matches("tier notin (frontend, backend)", "tier=cache"));
    /* "partition" / "!partition" */
    assert_true(matches("partition", qa_be));
    assert_false(matches("partition", prod_fe));
    assert_false(matches("!partition", qa_be));
    assert_true(matches("!partition", prod_fe));
    /* "partition in (customerA, customerB),environment!=qa" */
    assert_false(matches("partition in (customerA, customerB),environment!=qa", qa_be));
    assert_true(matches("partition in (customerA, customerB),environment!=qa",
                        "partition=customerB,environment=dev"));
    /* "partition,environment notin (qa)": the key must be there, then not qa. */
    assert_false(matches("partition,environment notin (qa)", qa_be));
    assert_false(matches("partition,environment notin (qa)", dev));
    assert_true(matches("partition,environment notin (qa)", "partition=x,environment=dev"));
    /* kubectl's "environment in (production),tier in (frontend)" */
    assert_true(matches("environment in (production),tier in (frontend)", prod_fe));
    assert_false(matches("environment in (production),tier in (frontend)", qa_be));

    /* The good and bad strings of Kubernetes' own parser test (k8s.io/apimachinery
     * pkg/labels/selector_test.go, TestSelectorParse), but "x>1" and "x>1,z<5": the greater/
     * less-than operators kubectl also takes are not among the ones selector.h supports. */
    parse_ok("x=a,y=b,z=c");
    parse_ok("");
    parse_ok("x!=a,y=b");
    parse_ok("x=");
    parse_ok("x= ");
    parse_ok("x=,z= ");
    parse_ok("x= ,z= ");
    parse_ok("!x");
    parse_bad("x=a||y=b", "\",\" expected at \"||y=b\"");
    parse_bad("x==a==b", "\",\" expected at \"==b\"");
    parse_bad("!x=a", "\",\" expected at \"=a\"");
    parse_bad("x<a", "=, ==, !=, in or notin expected at \"<a\"");
    parse_bad("x>1", "=, ==, !=, in or notin expected at \">1\"");
}

static void whitespace(void **state)
{
    (void)state;
    parse_ok("  app = web , tier != db ,\t!team\t, env in ( a , b ) , x notin(c) ");
    assert_int_equal(sel.n, 5);
    req_is(0, KUBE_SEL_IN, "app", 1, "web");
    req_is(1, KUBE_SEL_NOT_IN, "tier", 1, "db");
    req_is(2, KUBE_SEL_NOT_EXISTS, "team", 0);
    req_is(3, KUBE_SEL_IN, "env", 2, "a", "b");
    req_is(4, KUBE_SEL_NOT_IN, "x", 1, "c");
    parse_ok("! team");
    req_is(0, KUBE_SEL_NOT_EXISTS, "team", 0);
    parse_ok("a == b");
    req_is(0, KUBE_SEL_IN, "a", 1, "b");
    parse_ok("a\tin\t(\tb\t)\t");
    req_is(0, KUBE_SEL_IN, "a", 1, "b");
    /* Space inside an operator splits it. */
    parse_bad("a = = b", "\",\" expected");
    parse_bad("a ! = b", "=, ==, !=, in or notin expected");
    /* Space inside a word ends it. */
    parse_bad("ap p=web", "=, ==, !=, in or notin expected at \"p=web\"");
    parse_bad("app=we b", "\",\" expected at \"b\"");
}

static void empty_selects_all(void **state)
{
    (void)state;
    parse_ok("");
    assert_int_equal(sel.n, 0);
    assert_true(kube_label_selector_match(&sel, "app=web"));
    assert_true(kube_label_selector_match(&sel, ""));
    assert_true(kube_label_selector_match(&sel, NULL));
    parse_ok("   \t ");
    assert_int_equal(sel.n, 0);
    assert_true(kube_label_selector_match(&sel, "a=b"));
    assert_true(kube_label_selector_match(&sel, NULL));
}

/* A pod without the key: exists and in fail, !exists, != and notin hold; a pod without labels
 * at all (NULL or "") the same. */
static void absent_key(void **state)
{
    const char *labels[] = {"other=1", "", NULL, "appx=web", "xapp=web", "app"};

    (void)state;
    for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
        const char *l = labels[i];
        assert_false(matches("app", l));
        assert_true(matches("!app", l));
        assert_false(matches("app=web", l));
        assert_false(matches("app==web", l));
        assert_true(matches("app!=web", l));
        assert_false(matches("app in (web,db)", l));
        assert_true(matches("app notin (web,db)", l));
        assert_false(matches("app=", l));
        assert_true(matches("app!=", l));
    }
}

static void prefixed_keys_and_odd_values(void **state)
{
    const char *l = "app.kubernetes.io/name=pg,app.kubernetes.io/version=16.2-r1_x,"
                    "example.com/team=DB-core,name=plain";

    (void)state;
    parse_ok("app.kubernetes.io/name=pg");
    req_is(0, KUBE_SEL_IN, "app.kubernetes.io/name", 1, "pg");
    assert_true(kube_label_selector_match(&sel, l));
    /* The prefix is part of the key: "name" is another label. */
    assert_false(matches("app.kubernetes.io/name=plain", l));
    assert_true(matches("name=plain", l));
    assert_false(matches("name=pg", l));
    assert_false(matches("kubernetes.io/name=pg", l));
    assert_true(matches("app.kubernetes.io/version in (16.2-r1_x, 15.0)", l));
    assert_true(matches("app.kubernetes.io/version!=16.2-r1", l));
    assert_true(matches("example.com/team==DB-core", l));
    assert_true(matches("!example.com/owner,example.com/team", l));
    assert_true(matches("a_b-c.d=x.y-z_0", "a_b-c.d=x.y-z_0"));
    assert_true(matches("A1=B2", "A1=B2"));
    /* A value has no '/'. */
    parse_bad("app=a/b", "\",\" expected at \"/b\"");
    parse_bad("app in (a/b)", "no closing parenthesis");
}

/* label_value finds the key whole: "app=web" is neither key "ap" nor "app2", wherever it is in
 * the list, and a value holding '=' or a key as a substring does not confuse it. */
static void label_lookup_is_exact(void **state)
{
    (void)state;
    assert_false(matches("ap", "app=web"));
    assert_false(matches("ap=web", "app=web"));
    assert_false(matches("app2", "app=web"));
    assert_false(matches("app2=web", "app=web"));
    assert_true(matches("!ap,!app2,app", "app=web"));
    assert_true(matches("ap=1,app=2,app2=3", "app2=3,app=2,ap=1"));
    assert_true(matches("ap=1,app=2,app2=3", "ap=1,app=2,app2=3"));
    assert_true(matches("app=2", "app2=3,app=2"));
    assert_true(matches("app=2", "ap=1,app=2,app2=3"));
    /* The key in another label's value is not the key. */
    assert_false(matches("app", "x=app,y=app=1"));
    assert_false(matches("web", "app=web"));
    /* A value with '=' in it: the value is what follows the first '='. */
    parse_ok("y");
    assert_true(kube_label_selector_match(&sel, "y=a=b"));
    /* An element without '=' is no label. */
    assert_false(matches("app", "app,x=1"));
    assert_false(matches("app", "x=1,app"));
    assert_true(matches("x=1", "app,x=1"));
    /* The first of two labels with one key decides (kube_pod keeps keys unique). */
    assert_true(matches("app=a", "app=a,app=b"));
    /* Trailing and doubled commas in the labels. */
    assert_true(matches("app=web", "app=web,"));
    assert_true(matches("app=web", ",,app=web"));
    assert_true(matches("tier=fe", "app=web,,tier=fe"));
    /* Only the value's own bytes: "app=web" is not "app=we" nor "app=web2". */
    assert_false(matches("app=we", "app=web,tier=fe"));
    assert_false(matches("app=web2", "app=web,tier=fe"));
    assert_false(matches("app=web", "app=web2,tier=fe"));
    assert_false(matches("app=web", "app=,tier=web"));
}

static void errors(void **state)
{
    char err[512];

    (void)state;
    /* The header's own example, whole. */
    assert_int_equal(kube_label_selector_parse("a in (b", &sel, err, sizeof(err)), NR_EPARSE);
    assert_string_equal(err, "label selector \"a in (b\": no closing parenthesis");
    parse_bad("a in (b,c", "no closing parenthesis");
    parse_bad("a in (b,", "no closing parenthesis");
    parse_bad("a in (b c)", "no closing parenthesis");
    parse_bad("a in b", "\"(\" expected after in/notin");
    parse_bad("a notin", "\"(\" expected after in/notin");
    parse_bad("a in (b))", "\",\" expected at \")\"");
    /* Missing key */
    parse_bad("=b", "a label key expected at \"=b\"");
    parse_bad("!=b", "a label key expected at \"=b\"");
    parse_bad("!", "a label key expected");
    parse_bad(",a", "a label key expected at \",a\"");
    parse_bad("a,,b", "a label key expected at \",b\"");
    parse_bad("a, ,b", "a label key expected at \",b\"");
    parse_bad("a,=b", "a label key expected");
    parse_bad(" in (a)", "=, ==, !=, in or notin expected"); /* "in" is the key */
    /* Trailing comma */
    parse_bad("a,", "label selector \"a,\": ends with a comma");
    parse_bad("a=b, ", "ends with a comma");
    parse_bad("a in (b),", "ends with a comma");
    /* Bad characters and operators */
    parse_bad("a$b", "=, ==, !=, in or notin expected at \"$b\"");
    parse_bad("a=b$", "\",\" expected at \"$\"");
    parse_bad("a<3", "=, ==, !=, in or notin expected at \"<3\"");
    parse_bad("a>3", "=, ==, !=, in or notin expected");
    parse_bad("a!b", "=, ==, !=, in or notin expected at \"!b\"");
    parse_bad("a=b=c", "\",\" expected at \"=c\"");
    parse_bad("a===b", "\",\" expected");
    parse_bad("!a=b", "\",\" expected at \"=b\"");
    parse_bad("!a in (b)", "\",\" expected");
    parse_bad("a=(b)", "\",\" expected");
    parse_bad("a;b", "=, ==, !=, in or notin expected");
    parse_bad("a||b", "=, ==, !=, in or notin expected");
    parse_bad("a inx (b)", "=, ==, !=, in or notin expected at \"inx (b)\"");
    parse_bad("\xc3\xa4pp=web", "a label key expected");
    parse_bad("app=w\xc3\xa9", "\",\" expected");
    parse_bad("app=\"web\"", "\",\" expected");
    parse_bad("app=web\n", "\",\" expected"); /* only space and tab are whitespace */
    parse_bad("a in (b)c", "\",\" expected at \"c\"");
    /* The reason quotes the text, cut to 200 bytes. */
    {
        char big[400];
        memset(big, 'k', 300);
        strcpy(big + 300, "$");
        assert_int_equal(kube_label_selector_parse(big, &sel, err, sizeof(err)), NR_EPARSE);
        assert_true(strlen(err) < 300);
        assert_non_null(strstr(err, "label selector \"kkk"));
    }
}

static void limits(void **state)
{
    char text[8192], err[512];
    size_t o;

    (void)state;
    /* KUBE_SELECTOR_MAX_REQS requirements; one more is refused. */
    o = 0;
    for (int i = 0; i < (int)KUBE_SELECTOR_MAX_REQS; i++)
        o += (size_t)snprintf(text + o, sizeof(text) - o, "%sk%d", i ? "," : "", i);
    parse_ok(text);
    assert_int_equal(sel.n, KUBE_SELECTOR_MAX_REQS);
    snprintf(text + o, sizeof(text) - o, ",k99");
    parse_bad(text, "label selector: more than 32 requirements");

    /* KUBE_SELECTOR_MAX_VALS values in one set; one more is refused. */
    o = (size_t)snprintf(text, sizeof(text), "k in (");
    for (int i = 0; i < (int)KUBE_SELECTOR_MAX_VALS; i++)
        o += (size_t)snprintf(text + o, sizeof(text) - o, "%sv%d", i ? "," : "", i);
    snprintf(text + o, sizeof(text) - o, ")");
    parse_ok(text);
    assert_int_equal(sel.reqs[0].n_vals, KUBE_SELECTOR_MAX_VALS);
    assert_string_equal(sel.reqs[0].vals[15], "v15");
    assert_true(kube_label_selector_match(&sel, "k=v15"));
    assert_false(kube_label_selector_match(&sel, "k=v16"));
    snprintf(text + o, sizeof(text) - o, ",v16)");
    parse_bad(text, "label selector: more than 16 values in one set");
    memcpy(text, "k notin (", 9);
    o = 9;
    for (int i = 0; i < 17; i++)
        o += (size_t)snprintf(text + o, sizeof(text) - o, "%sv%d", i ? "," : "", i);
    snprintf(text + o, sizeof(text) - o, ")");
    parse_bad(text, "more than 16 values in one set");

    /* A value of 63 bytes (Kubernetes' own limit) is taken, 64 are not, in = and in sets. */
    memset(text, 0, sizeof(text));
    memcpy(text, "k=", 2);
    memset(text + 2, 'v', 63);
    parse_ok(text);
    assert_int_equal(strlen(sel.reqs[0].vals[0]), 63);
    {
        char labels[80];
        snprintf(labels, sizeof(labels), "k=%s", text + 2);
        assert_true(kube_label_selector_match(&sel, labels));
        labels[strlen(labels) - 1] = '\0'; /* 62 bytes: another value */
        assert_false(kube_label_selector_match(&sel, labels));
    }
    text[2 + 63] = 'v';
    parse_bad(text, "label selector: a value longer than 63 bytes");
    snprintf(text, sizeof(text), "k in (a,%0*d)", 64, 7);
    parse_bad(text, "a value longer than 63 bytes");
    snprintf(text, sizeof(text), "k notin (%0*d)", 63, 7);
    parse_ok(text);
    snprintf(text, sizeof(text), "k!=%0*d", 64, 7);
    parse_bad(text, "a value longer than 63 bytes");

    /* A key of 319 bytes (room for Kubernetes' 253-byte prefix, '/', 63-byte name) is taken;
     * 320 are refused. The reason given for a key too long is "a label key expected" (the
     * parser's word() says -1, which it reports as no key). */
    memset(text, 0, sizeof(text));
    memset(text, 'k', 319);
    parse_ok(text);
    assert_int_equal(strlen(sel.reqs[0].key), 319);
    memset(text, 0, sizeof(text));
    memset(text, 'k', 320);
    assert_int_equal(kube_label_selector_parse(text, &sel, err, sizeof(err)), NR_EPARSE);
    assert_non_null(strstr(err, "a label key expected"));
    memset(text, 0, sizeof(text));
    memset(text, 'p', 253);
    text[253] = '/';
    memset(text + 254, 'n', 63);
    strcat(text, "=v");
    parse_ok(text);
    assert_int_equal(strlen(sel.reqs[0].key), 317);

    /* KUBE_SELECTOR_MAX_TEXT bytes of text are taken; one more is refused before anything. */
    memset(text, 0, sizeof(text));
    text[0] = 'a';
    memset(text + 1, ' ', KUBE_SELECTOR_MAX_TEXT - 1);
    parse_ok(text);
    assert_int_equal(sel.n, 1);
    text[KUBE_SELECTOR_MAX_TEXT] = ' ';
    parse_bad(text, "label selector: longer than 4096 bytes");
}

/* selector.h promises a one-line reason in err, and the reason quotes the selector text: a text
 * holding a newline or another control byte must not break it (kube_label_selector_parse("a\nb")
 * once gave a reason with two raw newlines). The text comes from a client's SnapshotRequest
 * (services/store/select.c returns the reason as the INVALID_ARGUMENT message). */
static void reason_is_one_line(void **state)
{
    const char *texts[] = {"a\nb", "a=b\r\n", "a in (b\n", "a,\n", "\n"};
    char err[512];

    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        assert_int_equal(kube_label_selector_parse(texts[i], &sel, err, sizeof(err)), NR_EPARSE);
        if (strpbrk(err, "\r\n") != NULL)
            fail_msg("selector #%zu: the reason has a line break: \"%s\"", i, err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(operators_parse),
        cmocka_unit_test(operators_match),
        cmocka_unit_test(kubernetes_examples),
        cmocka_unit_test(whitespace),
        cmocka_unit_test(empty_selects_all),
        cmocka_unit_test(absent_key),
        cmocka_unit_test(prefixed_keys_and_odd_values),
        cmocka_unit_test(label_lookup_is_exact),
        cmocka_unit_test(errors),
        cmocka_unit_test(limits),
        cmocka_unit_test(reason_is_one_line),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
