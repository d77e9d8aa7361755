/*
 * rd_proctitle.c - process titles; see rd_proctitle.h. After nginx's
 * src/os/unix/ngx_setproctitle.c.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_proctitle.h"

extern char **environ;

static char *rd_title_start;        /* argv[0] */
static char *rd_title_end;          /* past the last contiguous string */
static const char *rd_title_cmdline = "";

void
rd_proctitle_init(int argc, char **argv)
{
    size_t len = 1;
    for (int i = 0; i < argc; i++) {
        len += strlen(argv[i]) + 1;
    }
    char *cmdline = rd_alloc(len);
    char *p = cmdline;
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(argv[i]);
        if (i > 0) {
            *p++ = ' ';
        }
        memcpy(p, argv[i], n);
        p += n;
    }
    *p = '\0';
    rd_title_cmdline = cmdline;

    if (argc == 0 || argv[0] == NULL) {
        return;
    }
    /* The strings the kernel laid out one after the other: the arguments,
     * then the environment. */
    char *end = argv[0];
    for (int i = 0; i < argc; i++) {
        if (argv[i] == end) {
            end = argv[i] + strlen(argv[i]) + 1;
        }
    }
    size_t nenv = 0;
    while (environ && environ[nenv]) {
        nenv++;
    }
    char **env = rd_alloc((nenv + 1) * sizeof(char *));
    for (size_t i = 0; i < nenv; i++) {
        if (environ[i] == end) {
            end = environ[i] + strlen(environ[i]) + 1;
        }
        env[i] = rd_strdup(environ[i]);
    }
    env[nenv] = NULL;
    environ = env;

    rd_title_start = argv[0];
    rd_title_end = end;
}

void
rd_proctitle_set(const char *fmt, ...)
{
    if (rd_title_start == NULL || rd_title_end - rd_title_start < 2) {
        return;
    }
    size_t room = (size_t)(rd_title_end - rd_title_start);
    char title[1024];
    int n = snprintf(title, sizeof(title), "redoubt: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(title + n, sizeof(title) - (size_t)n, fmt, ap);
    va_end(ap);

    size_t len = strlen(title);
    if (len > room - 1) {
        len = room - 1;
    }
    memcpy(rd_title_start, title, len);
    /* NULs after the title: ps(1) shows no stale bytes of what was
     * there before. */
    memset(rd_title_start + len, '\0', room - len);
}

const char *
rd_proctitle_cmdline(void)
{
    return rd_title_cmdline;
}
