/* zinit/init.c - see init.h */
#include "init.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/qlog.h"
#include "ctl.h"
#include "service.h"
#include "supervisor.h"

/* CLOCK_MONOTONIC in ms, plus 1: the supervisor uses 0 for "no deadline",
 * and the clock reads 0 in the first millisecond after boot (or in a time
 * namespace), where a deadline of "now" would silently mean "never". */
static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000 + 1;
}

struct loop {
	struct sup *sup;
	struct ctl *ctl;
	int64_t now;
};

static void to_followers(void *arg, const char *svc, const char *line, size_t len)
{
	struct loop *l = arg;
	ctl_broadcast(l->ctl, svc, line, len);
}

/* The control commands (the protocol is in ctl.h). */
static void dispatch(void *arg, const char *line, struct strbuf *reply,
		     struct ctl_follow *follow)
{
	struct loop *l = arg;
	char verb[32] = "";
	const char *name = NULL;
	const char *sp = strchr(line, ' ');
	size_t vlen = sp ? (size_t)(sp - line) : strlen(line);
	if (vlen < sizeof verb)
		memcpy(verb, line, vlen);
	verb[vlen < sizeof verb ? vlen : 0] = 0;
	if (sp && sp[1])
		name = sp + 1;
	struct strbuf body = { 0 };
	int r = 0;
	bool needs_name = !strcmp(verb, "status") || !strcmp(verb, "start") ||
			  !strcmp(verb, "stop") || !strcmp(verb, "restart");
	bool no_name = !strcmp(verb, "list") || !strcmp(verb, "shutdown");
	if (needs_name && !name) {
		sb_printf(&body, "%s needs a service name", verb);
		r = -EINVAL;
	} else if (no_name && name) {
		sb_printf(&body, "%s takes no argument", verb);
		r = -EINVAL;
	} else if (!strcmp(verb, "list")) {
		sup_list(l->sup, &body);
	} else if (!strcmp(verb, "status")) {
		r = sup_status(l->sup, name, &body);
	} else if (!strcmp(verb, "start")) {
		r = sup_start(l->sup, name, l->now, &body);
	} else if (!strcmp(verb, "stop")) {
		r = sup_stop(l->sup, name, l->now, &body);
	} else if (!strcmp(verb, "restart")) {
		r = sup_restart(l->sup, name, l->now, &body);
	} else if (!strcmp(verb, "log") || !strcmp(verb, "follow")) {
		r = sup_log(l->sup, name, &body);
		if (!r && !strcmp(verb, "follow")) {
			follow->on = true;
			snprintf(follow->name, sizeof follow->name, "%s", name ? name : "");
		}
	} else if (!strcmp(verb, "shutdown")) {
		qlog_info("zinit: shutdown requested on the control socket");
		sup_shutdown(l->sup, l->now);
		sb_printf(&body, "shutting down\n");
	} else {
		sb_printf(&body, "unknown command '%s' (known: list, status, start, stop, restart, "
			  "log, follow, shutdown)", line);
		r = -EINVAL;
	}
	sb_printf(reply, r ? "error: " : "ok\n");
	if (body.len)
		sb_add(reply, body.data, body.len);
	if (r)
		sb_printf(reply, "\n");
	sb_free(&body);
}

static void reap(struct loop *l)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;	/* none left exited (or no children at all) */
		if (!sup_child_exited(l->sup, pid, status, l->now))
			qlog_debug("zinit: reaped orphan %d", (int)pid);
	}
}

static void read_signals(int sfd, struct loop *l)
{
	struct signalfd_siginfo si;
	while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
		if (si.ssi_signo == SIGCHLD) {
			reap(l);
		} else {
			qlog_info("zinit: %s received", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
			sup_shutdown(l->sup, l->now);
		}
	}
}

int zinit_init(const struct init_opts *o)
{
	char err[8192];
	struct zsvc_set set;
	if (zsvc_load_dir(o->config_dir, &set, err, sizeof err)) {
		for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
			qlog_err("zinit: %s", line);
		qlog_err("zinit: not starting anything: fix the service files in %s",
			 o->config_dir);
		return 1;
	}
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	signal(SIGPIPE, SIG_IGN);	/* a gone stdout reader must not kill PID 1 */
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
		qlog_err("zinit: cannot block signals: %s", strerror(errno));
		zsvc_set_free(&set);
		return 1;
	}
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		qlog_err("zinit: signalfd: %s", strerror(errno));
		zsvc_set_free(&set);
		return 1;
	}
	if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		qlog_warn("zinit: cannot become a child subreaper (%s): orphans will not be "
			  "reaped by zinit", strerror(errno));
	struct ctl *ctl;
	if (ctl_open(o->socket, &ctl, err, sizeof err)) {
		qlog_err("zinit: %s", err);
		close(sfd);
		zsvc_set_free(&set);
		return 1;
	}
	struct loop l = { .ctl = ctl, .now = now_ms() };
	struct sup_opts so = { .ready_timeout_s = o->ready_timeout_s, .out_fd = STDOUT_FILENO,
			       .on_line = to_followers, .on_line_arg = &l };
	if (sup_new(&set, &so, &l.sup)) {
		qlog_err("zinit: out of memory");
		ctl_close(ctl);
		close(sfd);
		zsvc_set_free(&set);
		return 1;
	}
	qlog_info("zinit: pid %d, services from %s, control socket %s%s", (int)getpid(),
		  o->config_dir, o->socket, o->container ? ", container mode" : "");
	sup_begin(l.sup, l.now);
	struct pollfd *pfd = NULL;
	size_t pcap = 0;
	while (!sup_done(l.sup)) {
		size_t want = 1 + 1 + CTL_MAX_CONNS + sup_nstreams(l.sup);
		if (want > pcap) {
			struct pollfd *np = realloc(pfd, want * sizeof *np);
			if (!np) {
				qlog_err("zinit: out of memory; retrying");
				sleep(1);
				continue;
			}
			pfd = np;
			pcap = want;
		}
		pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		size_t nctl = ctl_fill_pollfds(ctl, pfd + 1, 1 + CTL_MAX_CONNS);
		size_t nout = sup_fill_pollfds(l.sup, pfd + 1 + nctl, pcap - 1 - nctl);
		int64_t d1 = sup_next_deadline(l.sup), d2 = ctl_tick(ctl, l.now);
		int64_t d = d1 < 0 ? d2 : d2 < 0 ? d1 : d1 < d2 ? d1 : d2;
		int timeout = -1;
		if (d >= 0)
			timeout = d <= l.now ? 0 : d - l.now > 60000 ? 60000 : (int)(d - l.now);
		int n = poll(pfd, 1 + nctl + nout, timeout);
		l.now = now_ms();
		if (n < 0 && errno != EINTR) {
			qlog_err("zinit: poll: %s", strerror(errno));
			sleep(1);
			continue;
		}
		if (n > 0) {
			if (pfd[0].revents)
				read_signals(sfd, &l);
			for (size_t k = 0; k < nout; k++)
				if (pfd[1 + nctl + k].revents)
					sup_read_output(l.sup, pfd[1 + nctl + k].fd);
			ctl_handle(ctl, pfd + 1, nctl, l.now, dispatch, &l);
		}
		sup_tick(l.sup, l.now);
	}
	free(pfd);
	reap(&l);
	sup_drain_output(l.sup);
	int status = o->container ? sup_exit_status(l.sup) : 0;
	qlog_info("zinit: shutdown complete%s", o->container
		  ? (status ? ": exit status 1 (not every service stopped cleanly)" : ": exit status 0")
		  : "");
	ctl_close(ctl);
	sup_free(l.sup);
	close(sfd);
	return status;
}
