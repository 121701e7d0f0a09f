/* The local recorder's credentials, in its data folder DATA (`tap --local --data DATA`):
 *   DATA/.tls/ca.crt                       the private CA every program trusts (its key is never
 *                                         written: a new set is made whenever one is needed)
 *   DATA/.tls/{store,hub,capture,client}.{crt,key}   one certificate each (EC P-256, one year,
 *                                         127.0.0.1, ::1 and localhost), client = this CLI
 *   DATA/hub.token                        the hub's bearer token (32 random bytes, hex)
 *   DATA/hub.addr                         the hub's address while tap --local runs
 * .tls has a dot because DATA is also the store's --data-dir, and the store takes every folder
 * there whose name does not start with one for a stream of segments.
 * Files 0600 in 0700 folders, each written to a temporary name and renamed. tap --local makes
 * them (cli_certs_ensure, cli_token_ensure, cli_hub_addr_write); pcapdump and status read them
 * to reach the local hub without flags (hub.c). */
#ifndef NR_CLI_CERTS_H
#define NR_CLI_CERTS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

enum cli_cert_role { CLI_CERT_STORE, CLI_CERT_HUB, CLI_CERT_CAPTURE, CLI_CERT_CLIENT, CLI_CERT_N };

/* Each certificate's common name: the store takes batches only from the capture's and
 * snapshots only from the hub's (--ingest-peers, --read-peers). */
extern const char *const cli_cert_names[CLI_CERT_N];

#define CLI_TOKEN_BYTES 32

struct cli_certs {
    char dir[PATH_MAX]; /* DATA/.tls */
    char ca[PATH_MAX];
    char cert[CLI_CERT_N][PATH_MAX];
    char key[CLI_CERT_N][PATH_MAX];
};

/* The default data folder of tap --local and of the CLI looking for it: $NETREEL_DATA, else
 * /var/lib/netreel as root, else $XDG_DATA_HOME/netreel or ~/.local/share/netreel. 0, or
 * -ENOENT when there is no $HOME to put it in. */
int cli_local_data_default(char *buf, size_t len);

/* Fills the paths of DATA's certificates (nothing is read). */
void cli_certs_paths(const char *data, struct cli_certs *c);

/* Makes sure DATA/.tls holds a CA and a certificate and key for every role that load, match,
 * chain to the CA and stay valid for at least another day; otherwise makes a new set. `made`
 * is set to "" when the set was reused, else to one line saying why a new one was made.
 * Returns 0, or a negative errno with a one-line reason in err. */
int cli_certs_ensure(const char *data, struct cli_certs *c, char *made, size_t made_len, char *err,
                     size_t errlen);

/* Makes sure DATA/hub.token holds a token (64 hex digits); makes one when it does not.
 * `path` gets the file's name, *made whether it was made now. 0, or a negative errno. */
int cli_token_ensure(const char *data, char *path, size_t len, bool *made, char *err,
                     size_t errlen);

/* Writes `addr` into DATA/hub.addr (atomically); cli_hub_addr_remove removes it. 0, or a
 * negative errno with err set. */
int cli_hub_addr_write(const char *data, const char *addr, char *err, size_t errlen);
void cli_hub_addr_remove(const char *data);

/* Reads DATA/hub.addr (not through a link) into addr: 0, or a negative errno (-ENOENT: there is
 * none; -EINVAL: it does not hold one host:port). */
int cli_hub_addr_read(const char *data, char *addr, size_t len);

/* Writes len bytes to DIR/NAME as a new 0600 file: a temporary file in DIR, fsync, rename,
 * then DIR fsync'ed. 0 or a negative errno. */
int cli_write_private(const char *dir, const char *name, const void *data, size_t len);

/* Makes path (and missing parents) with mode 0700; an existing folder is left as it is.
 * 0 or a negative errno. */
int cli_mkdir_private(const char *path);

#endif
