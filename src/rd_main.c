/*
 * rd_main.c - the command line.
 *
 *   redoubt [-c FILE] [-g]     start (daemon unless -g)
 *   redoubt -t [-c FILE]       test the configuration and exit
 *   redoubt -T [-c FILE]       test it and print it, includes expanded
 *   redoubt -s SIGNAL [-c FILE]  send reload|quit|stop|reopen to the master
 *   redoubt -v                 print the version
 *   redoubt -V                 the version, libraries, configure arguments
 *
 * -t and -T print what they find as nginx -t does: the problems, one a
 * line ("redoubt: FILE:LINE: directive: what is wrong", warnings as
 * "redoubt: [warn] ..."), then "configuration file FILE test is
 * successful" or "... test failed", on stderr; -T the configuration on
 * stdout.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "rd_command.h"
#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_module.h"
#include "rd_process.h"
#include "rd_proctitle.h"
#include "rd_stats.h"

#ifndef RD_SYSCONFDIR
#define RD_SYSCONFDIR "/etc"
#endif

static void
rd_usage(FILE *f)
{
    fprintf(f,
        "usage: redoubt [-c FILE] [-g] [-t | -T] [-s reload|quit|stop|reopen]"
        " [-v | -V]\n"
        "  -c FILE   configuration file (default %s/redoubt/redoubt.conf)\n"
        "  -g        stay in the foreground\n"
        "  -t        test the configuration and exit\n"
        "  -T        test the configuration, print it (with @include files\n"
        "            expanded) and exit\n"
        "  -s SIG    send a signal to the running master: reload, quit,\n"
        "            stop or reopen\n"
        "  -v        print the version and exit\n"
        "  -V        print the version, the libraries and the configure\n"
        "            arguments, and exit\n", RD_SYSCONFDIR);
}

/* redoubt -V: what this binary is made of, built with and running with. */
static void
rd_show_build(FILE *f)
{
    char pcre2[64] = "?";
    pcre2_config(PCRE2_CONFIG_VERSION, pcre2);

    fprintf(f, "redoubt version %s\n", PACKAGE_VERSION);
#ifdef __VERSION__
    fprintf(f, "built by %s %s\n",
#ifdef __clang__
            "clang",
#else
            "gcc",
#endif
            __VERSION__);
#endif
    fprintf(f, "built with %s\n", OPENSSL_VERSION_TEXT);
    fprintf(f, "running with %s\n", OpenSSL_version(OPENSSL_VERSION));
    fprintf(f, "built with PCRE2 %d.%d, running with PCRE2 %s\n",
            PCRE2_MAJOR, PCRE2_MINOR, pcre2);
    fprintf(f, "built with libconfig %d.%d.%d\n", LIBCONFIG_VER_MAJOR,
            LIBCONFIG_VER_MINOR, LIBCONFIG_VER_REVISION);
    fprintf(f, "command table from Redis %s\n", rd_command_table_version());
    fprintf(f, "configure arguments: %s\n", RD_CONFIGURE_ARGS);
}

static int
rd_pid_file_write(const char *path)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        return -1;
    }
    fprintf(f, "%d\n", (int)getpid());
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int
rd_send_signal(rd_cycle_t *cycle, const char *name)
{
    static const struct { const char *name; int sig; } sigs[] = {
        { "reload", SIGHUP }, { "quit", SIGQUIT }, { "stop", SIGTERM },
        { "reopen", SIGUSR1 },
    };
    const char *pid_file = rd_core_conf(cycle)->pid_file;

    for (size_t i = 0; i < rd_countof(sigs); i++) {
        if (strcmp(sigs[i].name, name) != 0) {
            continue;
        }
        pid_t pid = rd_pid_file_read(pid_file);
        if (pid <= 0) {
            fprintf(stderr, "redoubt: cannot read a pid from \"%s\": %s\n",
                    pid_file, errno ? strerror(errno) : "empty file");
            return 1;
        }
        if (kill(pid, sigs[i].sig) != 0) {
            fprintf(stderr, "redoubt: kill(%d, %s): %s\n", (int)pid, name,
                    strerror(errno));
            return 1;
        }
        return 0;
    }
    fprintf(stderr, "redoubt: unknown signal \"%s\" (use reload, quit, "
            "stop or reopen)\n", name);
    return 1;
}

static int
rd_daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid > 0) {
        _exit(0);
    }
    if (setsid() < 0) {
        return -1;
    }
    umask(022);
    int fd = open("/dev/null", O_RDWR);
    if (fd < 0) {
        return -1;
    }
    dup2(fd, STDIN_FILENO);
    dup2(fd, STDOUT_FILENO);
    if (rd_log_fd() == STDERR_FILENO) {
        dup2(fd, STDERR_FILENO);
    } else {
        dup2(rd_log_fd(), STDERR_FILENO);
    }
    if (fd > STDERR_FILENO) {
        close(fd);
    }
    return chdir("/");
}

int
main(int argc, char **argv)
{
    const char *conf = RD_SYSCONFDIR "/redoubt/redoubt.conf";
    const char *signame = NULL;
    int test = 0, dump = 0, foreground = 0, opt;

    /* Before anything keeps a pointer into the environment (the title
     * is written over it, rd_proctitle.h). */
    rd_proctitle_init(argc, argv);

    while ((opt = getopt(argc, argv, "c:gtTs:vVh")) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 'g': foreground = 1; break;
        case 't': test = 1; break;
        case 'T': test = 1; dump = 1; break;
        case 's': signame = optarg; break;
        case 'v':
            printf("redoubt version %s\n", PACKAGE_VERSION);
            return 0;
        case 'V':
            rd_show_build(stdout);
            return 0;
        case 'h':
            rd_usage(stdout);
            return 0;
        default:
            rd_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        rd_usage(stderr);
        return 2;
    }

    /* Relative paths inside the file are resolved against its directory;
     * make that directory absolute because a daemon changes to "/". */
    char conf_abs[PATH_MAX];
    if (realpath(conf, conf_abs) == NULL) {
        fprintf(stderr, "redoubt: %s: %s\n", conf, strerror(errno));
        return 1;
    }

    if (rd_modules_init() != RD_OK) {
        return 1;
    }
    if (test || signame) {
        rd_log_plain("redoubt");     /* no time or pid: not a log */
    }

    char *err = NULL;
    rd_cycle_t *cycle = rd_cycle_load(conf_abs, &err);
    if (cycle == NULL || rd_cycle_init_master(cycle, &err) != 0) {
        fprintf(stderr, "redoubt: %s\n", err);
        fprintf(stderr, "redoubt: configuration file %s test failed\n",
                conf_abs);
        free(err);
        rd_cycle_destroy(cycle);
        return 1;
    }

    if (test) {
        fprintf(stderr, "redoubt: the configuration file %s syntax is ok\n"
                "redoubt: configuration file %s test is successful\n",
                conf_abs, conf_abs);
        rd_cycle_destroy(cycle);
        char buf[1024];
        if (dump && rd_conf_dump(conf_abs, stdout, buf, sizeof(buf)) != 0) {
            fprintf(stderr, "redoubt: %s\n", buf);
            return 1;
        }
        return 0;
    }
    if (signame) {
        int rc = rd_send_signal(cycle, signame);
        rd_cycle_destroy(cycle);
        return rc;
    }

    /* The shared counters, before the first fork (rd_stats.h). */
    rd_stats_init();
    rd_stats_register_databases(cycle);

    rd_core_conf_t *ccf = rd_core_conf(cycle);
    pid_t running = rd_pid_file_read(ccf->pid_file);
    if (running > 0 && running != getpid() && kill(running, 0) == 0) {
        fprintf(stderr, "redoubt: already running as pid %d (pid file %s)\n",
                (int)running, ccf->pid_file);
        rd_cycle_destroy(cycle);
        return 1;
    }
    char where[1024];
    if (rd_log_open(ccf->error_log, (int)ccf->error_log_level) != 0) {
        int e = errno;
        fprintf(stderr, "redoubt: %s: cannot open \"%s\": %s\n",
                rd_conf_where(cycle, cycle->main_conf, "error_log.path",
                              where, sizeof(where)),
                ccf->error_log, strerror(e));
        rd_cycle_destroy(cycle);
        return 1;
    }
    if (rd_cycle_open_listeners(cycle, NULL, &err) != 0
        || rd_modules_process_open(cycle, NULL, &err) != 0)
    {
        fprintf(stderr, "redoubt: %s\n", err);
        rd_log_error("%s", err);
        free(err);
        rd_cycle_destroy(cycle);
        return 1;
    }

    signal(SIGPIPE, SIG_IGN);
    rd_process_block_signals();

    if (!foreground && rd_daemonize() != 0) {
        fprintf(stderr, "redoubt: cannot become a daemon: %s\n",
                strerror(errno));
        return 1;
    }
    if (rd_pid_file_write(ccf->pid_file) != 0) {
        int e = errno;
        rd_conf_where(cycle, cycle->main_conf, "pid_file", where,
                      sizeof(where));
        rd_log_error("%s: cannot write \"%s\": %s", where, ccf->pid_file,
                     strerror(e));
        fprintf(stderr, "redoubt: %s: cannot write \"%s\": %s\n", where,
                ccf->pid_file, strerror(e));
        rd_cycle_destroy(cycle);
        return 1;
    }
    rd_log_notice("redoubt %s started, master pid %d, configuration %s",
                  PACKAGE_VERSION, (int)getpid(), conf_abs);
    rd_proctitle_set("master process %s", rd_proctitle_cmdline());

    return rd_master_run(cycle);
}
