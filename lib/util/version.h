/* The version every netreel program reports (--version, SHB user application, /metrics). */
#ifndef NR_UTIL_VERSION_H
#define NR_UTIL_VERSION_H

#define NR_VERSION "0.1.0-dev"

#endif
