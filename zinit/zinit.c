/* zinit/zinit.c - the zinit command: `zinit init` runs the supervisor (see
 * init.h), every other command is a client of its control socket (see
 * ctl.h). Exit status: 0 ok, 1 error (reported on stderr), 2 usage. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "init.h"

#define DEFAULT_CONFIG_DIR "/etc/zinit"
#define DEFAULT_SOCKET "/var/run/zinit.sock"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: zinit [-s SOCKET] COMMAND [ARGS]\n"
		"  init [--container] [-c DIR] [-s SOCKET] [--ready-timeout SECONDS]\n"
		"                   run the services of DIR/*.yaml (default " DEFAULT_CONFIG_DIR ")\n"
		"  list             every service and its state\n"
		"  status NAME      pid, state, target, after, last exit of a service\n"
		"  start NAME | stop NAME | restart NAME\n"
		"  log [-f] [NAME]  the recent output lines kept in memory; -f: then\n"
		"                   every new line as it comes, until zinit exits\n"
		"  shutdown         stop every service, dependents first, then exit\n"
		"The socket is -s SOCKET, else $ZINIT_SOCKET, else " DEFAULT_SOCKET ".\n");
}

/* fds 0-2 must exist, or pipes created later could take their numbers. */
static void ensure_std_fds(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
			return;
}

static int cmd_init(int argc, char **argv, const char *socket)
{
	struct init_opts o = { .config_dir = DEFAULT_CONFIG_DIR, .socket = socket };
	static const struct option longopts[] = {
		{ "container", no_argument, NULL, 'C' },
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "ready-timeout", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:s:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'C': o.container = true; break;
		case 'c': o.config_dir = optarg; break;
		case 's': o.socket = optarg; break;
		case 'R': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || !*optarg || optarg[0] == '-' || v == 0 || v > 86400) {
				fprintf(stderr, "zinit: --ready-timeout: expected 1 to 86400 seconds, "
					"got '%s'\n", optarg);
				return 2;
			}
			o.ready_timeout_s = (unsigned)v;
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "zinit: init: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	ensure_std_fds();
	return zinit_init(&o);
}

static int cmd_client(int argc, char **argv, const char *socket)
{
	static const char *const with_name[] = { "status", "start", "stop", "restart" };
	static const char *const without[] = { "list", "shutdown" };
	const char *cmd = argv[0];
	bool follow = false;
	if (!strcmp(cmd, "log") && argc >= 2 &&
	    (!strcmp(argv[1], "-f") || !strcmp(argv[1], "--follow"))) {
		follow = true;
		argv++;
		argc--;
	}
	bool needs = false, known = !strcmp(cmd, "log");
	for (size_t i = 0; i < 4; i++)
		if (!strcmp(cmd, with_name[i]))
			needs = known = true;
	for (size_t i = 0; i < 2; i++)
		if (!strcmp(cmd, without[i]))
			known = true;
	if (!known) {
		fprintf(stderr, "zinit: unknown command '%s'\n", cmd);
		usage(stderr);
		return 2;
	}
	bool optional = !strcmp(cmd, "log");
	if ((needs && argc != 2) || (!needs && !optional && argc != 1) || (optional && argc > 2)) {
		fprintf(stderr, "zinit: %s %s\n", cmd, needs ? "needs one service name" :
			optional ? "takes at most one service name" : "takes no argument");
		return 2;
	}
	if (argc == 2 && (!*argv[1] || strpbrk(argv[1], " \t\n"))) {
		fprintf(stderr, "zinit: '%s' is not a service name\n", argv[1]);
		return 2;
	}
	char line[CTL_LINE_MAX];
	int n = snprintf(line, sizeof line, "%s%s%s", follow ? "follow" : cmd,
			 argc == 2 ? " " : "", argc == 2 ? argv[1] : "");
	if (n < 0 || (size_t)n >= sizeof line) {
		fprintf(stderr, "zinit: the service name is too long\n");
		return 2;
	}
	int ok = 0;
	char *body;
	int r;
	if (follow) {
		r = ctl_stream(socket, line, STDOUT_FILENO, &body);
		if (r == 0 || r == -EPIPE)
			return 0;	/* zinit exited, or our reader went away */
		if (r == 1)
			r = 0;		/* an error reply, in body */
	} else {
		r = ctl_request(socket, line, &ok, &body);
	}
	if (r == -EPROTO) {
		fprintf(stderr, "zinit: %s: garbled reply (is that a zinit socket?)\n", socket);
		return 1;
	}
	if (r) {
		fprintf(stderr, "zinit: cannot reach %s: %s\n", socket, strerror(-r));
		return 1;
	}
	if (!ok) {
		fprintf(stderr, "zinit: %s\n", body);
		free(body);
		return 1;
	}
	if (*body)
		printf("%s\n", body);
	free(body);
	return 0;
}

int main(int argc, char **argv)
{
	/* -s, else the environment (so scripts and shells need no alias),
	 * else the default */
	const char *socket = getenv("ZINIT_SOCKET");
	if (!socket || !*socket)
		socket = DEFAULT_SOCKET;
	int opt;
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	while ((opt = getopt_long(argc, argv, "+s:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': socket = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[optind], "init"))
		return cmd_init(argc - optind, argv + optind, socket);
	return cmd_client(argc - optind, argv + optind, socket);
}
