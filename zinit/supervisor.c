/* zinit/supervisor.c - see supervisor.h */
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/qlog.h"
#include "output.h"
#include "spawn.h"

enum state {
	ST_BLOCKED,
	ST_SPAWNED,
	ST_RUNNING,
	ST_TEST_FAILED,
	ST_SUCCESS,
	ST_FAILED,
	ST_RESTARTING,
	ST_STOPPING,
	ST_STOPPED,
};

static const char *const state_names[] = {
	"blocked", "spawned", "running", "test-failed", "success", "failed", "restarting",
	"stopping", "stopped",
};

/* The run-time record of one service; times are CLOCK_MONOTONIC ms and
 * 0 means "not set". */
struct svc {
	const struct zsvc *cfg;
	enum state state;
	bool want_up;		/* the target: up or down */
	pid_t pid;		/* the service process (its group id too), 0: none */
	int64_t started_at;
	int64_t restart_at;	/* ST_RESTARTING: when to run again */
	int64_t backoff_ms;	/* the next restart delay */
	int64_t kill_at;	/* stop signal sent: when to SIGKILL */
	bool stop_sent;		/* this run got its stop signal from zinit */
	bool killed;		/* this run was SIGKILLed after its timeout */
	bool start_again;	/* restart: spawn as soon as this run exited */
	pid_t test_pid;		/* a test attempt running, 0: none */
	int64_t test_at;	/* when to run the next test attempt */
	int64_t test_delay_ms;	/* the wait after the next failed attempt */
	int64_t test_kill_at;	/* when to kill the running attempt */
	int64_t ready_by;	/* give up on the test at this time */
	bool have_status;
	int last_status;	/* wait status of the last run */
	bool bad;		/* the last run ended uncleanly */
	bool test_gave_up;	/* the current run's test never passed */
	unsigned restarts;
	struct ring ring;
};

/* One output pipe; it outlives the process that writes into it until its
 * last writer (maybe a grandchild) closes it. */
struct stream {
	int fd;
	size_t svc;
	struct linebuf lb;
	struct stream *next;
};

struct sup {
	struct zsvc_set set;
	struct svc *svc;
	struct stream *streams;
	size_t nstreams;
	bool shutting_down;
	int64_t ready_timeout_ms;
	int out_fd;
	void (*on_line)(void *arg, const char *svc, const char *line, size_t len);
	void *on_line_arg;
	uint64_t seq;		/* numbers output lines in arrival order */
};

static bool is_ready(const struct svc *v)
{
	return v->cfg->oneshot ? v->state == ST_SUCCESS : v->state == ST_RUNNING;
}

static const char *describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status) && zsvc_signal_name(WTERMSIG(status)))
		snprintf(buf, len, "killed by %s", zsvc_signal_name(WTERMSIG(status)));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(buf, len, "ended with wait status %d", status);
	return buf;
}

/* ---- output ---- */

struct emit_ctx {
	struct sup *s;
	size_t svc;
};

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return;	/* nowhere to write: the line stays in the ring */
		p += k;
		n -= (size_t)k;
	}
}

static void emit_line(void *arg, const char *line, size_t len)
{
	struct emit_ctx *e = arg;
	struct svc *v = &e->s->svc[e->svc];
	if (ring_push(&v->ring, ++e->s->seq, line, len))
		qlog_warn("zinit: %s: out of memory: an output line is lost", v->cfg->name);
	size_t nlen = strlen(v->cfg->name);
	char *buf = malloc(nlen + 2 + len + 1);
	if (!buf)
		return;
	memcpy(buf, v->cfg->name, nlen);
	memcpy(buf + nlen, ": ", 2);
	memcpy(buf + nlen + 2, line, len);
	buf[nlen + 2 + len] = '\n';
	write_all(e->s->out_fd, buf, nlen + 3 + len);
	free(buf);
	if (e->s->on_line)
		e->s->on_line(e->s->on_line_arg, v->cfg->name, line, len);
}

static void add_stream(struct sup *s, size_t i, int fd)
{
	struct stream *st = calloc(1, sizeof *st);
	if (!st) {
		qlog_warn("zinit: %s: out of memory: its output is discarded", s->svc[i].cfg->name);
		close(fd);
		return;
	}
	st->fd = fd;
	st->svc = i;
	st->next = s->streams;
	s->streams = st;
	s->nstreams++;
}

static void close_stream(struct sup *s, struct stream **link)
{
	struct stream *st = *link;
	struct emit_ctx e = { s, st->svc };
	linebuf_flush(&st->lb, emit_line, &e);
	close(st->fd);
	*link = st->next;
	free(st);
	s->nstreams--;
}

size_t sup_nstreams(const struct sup *s)
{
	return s->nstreams;
}

size_t sup_fill_pollfds(const struct sup *s, struct pollfd *p, size_t cap)
{
	size_t n = 0;
	for (struct stream *st = s->streams; st && n < cap; st = st->next)
		p[n++] = (struct pollfd){ .fd = st->fd, .events = POLLIN };
	return n;
}

/* Read up to limit bytes from the stream; returns false once it ended. */
static bool read_stream(struct sup *s, struct stream *st, size_t limit)
{
	char buf[16384];
	struct emit_ctx e = { s, st->svc };
	size_t total = 0;
	while (total < limit) {
		ssize_t k = read(st->fd, buf, sizeof buf);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return true;
		if (k <= 0)
			return false;
		linebuf_feed(&st->lb, buf, (size_t)k, emit_line, &e);
		total += (size_t)k;
	}
	return true;
}

void sup_read_output(struct sup *s, int fd)
{
	for (struct stream **l = &s->streams; *l; l = &(*l)->next) {
		if ((*l)->fd != fd)
			continue;
		if (!read_stream(s, *l, 65536))
			close_stream(s, l);
		return;
	}
}

void sup_drain_output(struct sup *s)
{
	while (s->streams) {
		read_stream(s, s->streams, 1 << 20);
		close_stream(s, &s->streams);
	}
}

/* ---- starting ---- */

static bool deps_ready(const struct sup *s, size_t i)
{
	const struct zsvc *c = s->svc[i].cfg;
	for (size_t k = 0; k < c->nafter; k++)
		if (!is_ready(&s->svc[c->after[k].idx]))
			return false;
	return true;
}

static void run_ended(struct sup *s, size_t i, int status, int64_t now);
static void wake_blocked(struct sup *s, int64_t now);

/* Run the service's command now. */
static void spawn_service(struct sup *s, size_t i, int64_t now)
{
	struct svc *v = &s->svc[i];
	const struct zsvc *c = v->cfg;
	int p[2] = { -1, -1 };
	if (c->log != ZSVC_LOG_NULL && pipe2(p, O_CLOEXEC) < 0) {
		qlog_warn("zinit: %s: cannot create its output pipe (%s): output discarded", c->name,
			  strerror(errno));
		p[0] = p[1] = -1;
	}
	struct spawn_req req = { .argv = c->exec_argv, .env = c->env, .dir = c->dir,
				 .out_fd = p[1] };
	char err[512];
	pid_t pid;
	int r = spawn_start(&req, &pid, err, sizeof err);
	if (p[1] >= 0)
		close(p[1]);
	v->started_at = now;
	v->stop_sent = v->killed = false;
	v->test_gave_up = false;
	v->test_at = v->test_kill_at = v->ready_by = 0;
	if (r) {
		if (p[0] >= 0)
			close(p[0]);
		qlog_err("zinit: %s: %s", c->name, err);
		run_ended(s, i, 127 << 8, now);	/* as a shell reports it */
		return;
	}
	if (p[0] >= 0) {
		fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
		add_stream(s, i, p[0]);
	}
	v->pid = pid;
	qlog_info("zinit: %s: started (pid %d)", c->name, (int)pid);
	if (!c->oneshot && c->test_argv) {
		v->state = ST_SPAWNED;
		v->test_at = now;
		v->test_delay_ms = SUP_TEST_FIRST_DELAY_MS;
		v->ready_by = now + s->ready_timeout_ms;
	} else {
		v->state = ST_RUNNING;
		if (!c->oneshot)
			wake_blocked(s, now);
	}
}

/* Start every blocked service whose dependencies are all ready. Going
 * through them in start order lets a chain of services without tests
 * start in one pass. */
static void wake_blocked(struct sup *s, int64_t now)
{
	if (s->shutting_down)
		return;
	for (size_t k = 0; k < s->set.n; k++) {
		size_t i = s->set.order[k];
		struct svc *v = &s->svc[i];
		if (v->state == ST_BLOCKED && v->want_up && !v->pid && deps_ready(s, i))
			spawn_service(s, i, now);
	}
}

void sup_begin(struct sup *s, int64_t now)
{
	qlog_info("zinit: starting %zu service%s", s->set.n, s->set.n == 1 ? "" : "s");
	wake_blocked(s, now);
}

/* ---- stopping ---- */

static void kill_group(pid_t pid, int sig)
{
	if (kill(-pid, sig) < 0)
		kill(pid, sig);	/* it left its group: at least the process */
}

static void send_stop(struct sup *s, size_t i, int64_t now)
{
	struct svc *v = &s->svc[i];
	const struct zsvc *c = v->cfg;
	qlog_info("zinit: %s: stopping with %s (pid %d, SIGKILL after %u s)", c->name,
		  zsvc_signal_name(c->stop_signal), (int)v->pid, c->shutdown_timeout);
	kill_group(v->pid, c->stop_signal);
	v->stop_sent = true;
	v->state = ST_STOPPING;
	v->kill_at = now + (int64_t)c->shutdown_timeout * 1000;
	if (v->kill_at <= 0)
		v->kill_at = 1;
}

static void kill_test(struct svc *v)
{
	if (v->test_pid)
		kill_group(v->test_pid, SIGKILL);
	v->test_at = v->test_kill_at = 0;
}

/* Shutdown: stop each running service whose dependents have all exited. */
static void shutdown_step(struct sup *s, int64_t now)
{
	for (size_t i = 0; i < s->set.n; i++) {
		struct svc *v = &s->svc[i];
		if (!v->pid || v->stop_sent)
			continue;
		bool dependents_gone = true;
		for (size_t j = 0; j < s->set.n && dependents_gone; j++) {
			const struct zsvc *c = s->svc[j].cfg;
			for (size_t k = 0; k < c->nafter; k++)
				if (c->after[k].idx == i && s->svc[j].pid)
					dependents_gone = false;
		}
		if (dependents_gone)
			send_stop(s, i, now);
	}
}

void sup_shutdown(struct sup *s, int64_t now)
{
	if (s->shutting_down) {
		qlog_info("zinit: already shutting down");
		return;
	}
	s->shutting_down = true;
	qlog_info("zinit: shutting down: stopping services, dependents first");
	for (size_t i = 0; i < s->set.n; i++) {
		struct svc *v = &s->svc[i];
		v->want_up = false;
		v->start_again = false;
		kill_test(v);
		if (v->state == ST_BLOCKED || v->state == ST_RESTARTING)
			v->state = ST_STOPPED;
	}
	shutdown_step(s, now);
}

bool sup_done(const struct sup *s)
{
	if (!s->shutting_down)
		return false;
	for (size_t i = 0; i < s->set.n; i++)
		if (s->svc[i].pid || s->svc[i].test_pid)
			return false;
	return true;
}

int sup_exit_status(const struct sup *s)
{
	int r = 0;
	for (size_t i = 0; i < s->set.n; i++) {
		const struct svc *v = &s->svc[i];
		char how[64] = "never ran";
		if (v->have_status)
			describe_status(v->last_status, how, sizeof how);
		if (v->test_gave_up) {
			qlog_warn("zinit: %s: not clean: its test never passed", v->cfg->name);
			r = 1;
		} else if (v->bad) {
			qlog_warn("zinit: %s: not clean: its last run %s%s", v->cfg->name, how,
				  v->killed ? " after its shutdown_timeout" : "");
			r = 1;
		}
	}
	return r;
}

/* ---- exits ---- */

/* The service's process (or the attempt to run it) ended with status. */
static void run_ended(struct sup *s, size_t i, int status, int64_t now)
{
	struct svc *v = &s->svc[i];
	const struct zsvc *c = v->cfg;
	char how[64];
	describe_status(status, how, sizeof how);
	v->pid = 0;
	v->kill_at = 0;
	v->have_status = true;
	v->last_status = status;
	kill_test(v);
	bool clean = (WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
		     (WIFSIGNALED(status) && v->stop_sent && WTERMSIG(status) == c->stop_signal);
	v->bad = !clean || v->killed;
	if (v->stop_sent || s->shutting_down) {
		qlog_info("zinit: %s: %s", c->name, how);
		v->state = c->oneshot && clean && !v->stop_sent ? ST_SUCCESS : ST_STOPPED;
		if (v->start_again && !s->shutting_down) {
			v->start_again = false;
			v->want_up = true;
			v->backoff_ms = SUP_RESTART_FIRST_MS;
			v->state = ST_BLOCKED;
			wake_blocked(s, now);
		}
		if (s->shutting_down)
			shutdown_step(s, now);
		return;
	}
	if (c->oneshot) {
		if (clean) {
			qlog_info("zinit: %s: %s: success", c->name, how);
			v->state = ST_SUCCESS;
			wake_blocked(s, now);
		} else {
			qlog_err("zinit: %s: %s: failed; the services after it will not start",
				 c->name, how);
			v->state = ST_FAILED;
		}
		return;
	}
	if (now - v->started_at >= SUP_RESTART_RESET_MS || !v->backoff_ms)
		v->backoff_ms = SUP_RESTART_FIRST_MS;
	qlog_warn("zinit: %s: %s; restarting in %.1f s", c->name, how,
		  (double)v->backoff_ms / 1000);
	v->state = ST_RESTARTING;
	v->restart_at = now + v->backoff_ms;
	v->backoff_ms *= 2;
	if (v->backoff_ms > SUP_RESTART_MAX_MS)
		v->backoff_ms = SUP_RESTART_MAX_MS;
}

static void test_ended(struct sup *s, size_t i, int status, int64_t now)
{
	struct svc *v = &s->svc[i];
	v->test_pid = 0;
	v->test_kill_at = 0;
	if (v->state != ST_SPAWNED || !v->pid || s->shutting_down)
		return;	/* stopped or exited meanwhile, or no more tests */
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		qlog_info("zinit: %s: ready (its test passed)", v->cfg->name);
		v->state = ST_RUNNING;
		v->test_at = 0;
		wake_blocked(s, now);
		return;
	}
	if (now >= v->ready_by) {
		char how[64];
		qlog_err("zinit: %s: its test never passed within %lld s (last: %s); the "
			 "services after it will not start", v->cfg->name,
			 (long long)s->ready_timeout_ms / 1000,
			 describe_status(status, how, sizeof how));
		v->state = ST_TEST_FAILED;
		v->test_gave_up = true;
		v->test_at = 0;
		return;
	}
	v->test_at = now + v->test_delay_ms;
	v->test_delay_ms *= 2;
	if (v->test_delay_ms > SUP_TEST_MAX_DELAY_MS)
		v->test_delay_ms = SUP_TEST_MAX_DELAY_MS;
}

/* Read what service i wrote and zinit has not read yet (all of it, once
 * nothing holds its pipe open any more). */
static void read_output_of(struct sup *s, size_t i)
{
	for (struct stream **l = &s->streams; *l;) {
		if ((*l)->svc == i && !read_stream(s, *l, 1 << 20)) {
			close_stream(s, l);
			continue;
		}
		l = &(*l)->next;
	}
}

bool sup_child_exited(struct sup *s, pid_t pid, int status, int64_t now)
{
	for (size_t i = 0; i < s->set.n; i++) {
		if (s->svc[i].pid == pid) {
			/* its last lines before the line that says it ended: the
			 * event loop may see the exit before the output still in
			 * the pipe, and the two went out of order (./dev down) */
			read_output_of(s, i);
			run_ended(s, i, status, now);
			return true;
		}
		if (s->svc[i].test_pid == pid) {
			test_ended(s, i, status, now);
			return true;
		}
	}
	return false;
}

/* ---- time ---- */

static void run_test(struct sup *s, size_t i, int64_t now)
{
	struct svc *v = &s->svc[i];
	const struct zsvc *c = v->cfg;
	struct spawn_req req = { .argv = c->test_argv, .env = c->env, .dir = c->dir,
				 .out_fd = -1 };
	char err[512];
	v->test_at = 0;
	if (spawn_start(&req, &v->test_pid, err, sizeof err)) {
		v->test_pid = 0;
		qlog_warn("zinit: %s: test: %s", c->name, err);
		test_ended(s, i, 127 << 8, now);	/* a failed attempt */
		return;
	}
	v->test_kill_at = now + SUP_TEST_ATTEMPT_MS;
	if (v->test_kill_at > v->ready_by)
		v->test_kill_at = v->ready_by;
	if (v->test_kill_at <= now)
		v->test_kill_at = now + 1;
}

void sup_tick(struct sup *s, int64_t now)
{
	for (size_t i = 0; i < s->set.n; i++) {
		struct svc *v = &s->svc[i];
		if (v->state == ST_RESTARTING && now >= v->restart_at && !s->shutting_down) {
			v->restarts++;
			spawn_service(s, i, now);
		}
		if (v->test_at && now >= v->test_at && !v->test_pid && v->state == ST_SPAWNED &&
		    !s->shutting_down)
			run_test(s, i, now);
		if (v->test_pid > 0 && v->test_kill_at && now >= v->test_kill_at) {
			kill_group(v->test_pid, SIGKILL);
			v->test_kill_at = 0;
		}
		if (v->pid && v->kill_at && now >= v->kill_at) {
			qlog_warn("zinit: %s: still running %u s after %s: sending SIGKILL",
				  v->cfg->name, v->cfg->shutdown_timeout,
				  zsvc_signal_name(v->cfg->stop_signal));
			kill_group(v->pid, SIGKILL);
			v->killed = true;
			v->kill_at = 0;
		}
	}
	if (s->shutting_down)
		shutdown_step(s, now);
}

int64_t sup_next_deadline(const struct sup *s)
{
	int64_t d = -1;
	for (size_t i = 0; i < s->set.n; i++) {
		const struct svc *v = &s->svc[i];
		int64_t t[4] = { v->state == ST_RESTARTING && !s->shutting_down ? v->restart_at : 0,
				 v->state == ST_SPAWNED && !v->test_pid && !s->shutting_down
					 ? v->test_at : 0,
				 v->test_pid > 0 ? v->test_kill_at : 0,
				 v->pid ? v->kill_at : 0 };
		for (int k = 0; k < 4; k++)
			if (t[k] && (d < 0 || t[k] < d))
				d = t[k];
	}
	return d;
}

/* ---- life ---- */

int sup_new(struct zsvc_set *set, const struct sup_opts *o, struct sup **out)
{
	struct sup *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->svc = calloc(set->n + 1, sizeof *s->svc);
	if (!s->svc) {
		free(s);
		return -ENOMEM;
	}
	s->set = *set;
	memset(set, 0, sizeof *set);
	s->ready_timeout_ms = (int64_t)(o->ready_timeout_s ? o->ready_timeout_s
							   : SUP_READY_TIMEOUT_S) * 1000;
	s->out_fd = o->out_fd;
	s->on_line = o->on_line;
	s->on_line_arg = o->on_line_arg;
	for (size_t i = 0; i < s->set.n; i++) {
		s->svc[i].cfg = &s->set.svc[i];
		s->svc[i].state = ST_BLOCKED;
		s->svc[i].want_up = true;
		s->svc[i].backoff_ms = SUP_RESTART_FIRST_MS;
	}
	*out = s;
	return 0;
}

void sup_free(struct sup *s)
{
	if (!s)
		return;
	while (s->streams) {
		struct stream *st = s->streams;
		s->streams = st->next;
		close(st->fd);
		free(st);
	}
	for (size_t i = 0; i < s->set.n; i++)
		ring_free(&s->svc[i].ring);
	free(s->svc);
	zsvc_set_free(&s->set);
	free(s);
}

/* ---- control ---- */

static long lookup(const struct sup *s, const char *name, struct strbuf *out)
{
	long i = name ? zsvc_find(&s->set, name) : -1;
	if (i < 0)
		sb_printf(out, "unknown service '%s'", name ? name : "");
	return i;
}

void sup_list(const struct sup *s, struct strbuf *out)
{
	for (size_t i = 0; i < s->set.n; i++)
		sb_printf(out, "%s: %s\n", s->svc[i].cfg->name, state_names[s->svc[i].state]);
}

int sup_status(const struct sup *s, const char *name, struct strbuf *out)
{
	long i = lookup(s, name, out);
	if (i < 0)
		return -ENOENT;
	const struct svc *v = &s->svc[i];
	const struct zsvc *c = v->cfg;
	sb_printf(out, "name: %s\npid: %d\nstate: %s\ntarget: %s\nafter:", c->name, (int)v->pid,
		  state_names[v->state], v->want_up ? "up" : "down");
	for (size_t k = 0; k < c->nafter; k++)
		sb_printf(out, "%s%s", k ? ", " : " ", c->after[k].name);
	sb_printf(out, "%s\noneshot: %s\n", c->nafter ? "" : " -", c->oneshot ? "yes" : "no");
	if (v->state == ST_BLOCKED && !s->shutting_down) {
		sb_printf(out, "waiting for:");
		for (size_t k = 0; k < c->nafter; k++) {
			const struct svc *d = &s->svc[c->after[k].idx];
			if (!is_ready(d))
				sb_printf(out, " %s (%s)", d->cfg->name, state_names[d->state]);
		}
		sb_printf(out, "\n");
	}
	char how[64] = "none";
	if (v->have_status)
		describe_status(v->last_status, how, sizeof how);
	sb_printf(out, "last exit: %s%s\nrestarts: %u\n", how,
		  v->have_status && v->killed ? " (SIGKILL after shutdown_timeout)" : "",
		  v->restarts);
	return 0;
}

int sup_start(struct sup *s, const char *name, int64_t now, struct strbuf *out)
{
	long i = lookup(s, name, out);
	if (i < 0)
		return -ENOENT;
	struct svc *v = &s->svc[i];
	if (s->shutting_down) {
		sb_printf(out, "zinit is shutting down: not starting %s", name);
		return -EBUSY;
	}
	if (v->pid) {
		if (v->want_up) {
			sb_printf(out, "%s: already %s\n", name, state_names[v->state]);
			return 0;
		}
		v->want_up = true;
		v->start_again = true;
		sb_printf(out, "%s: will start again once it stopped\n", name);
		return 0;
	}
	v->want_up = true;
	v->state = ST_BLOCKED;
	v->backoff_ms = SUP_RESTART_FIRST_MS;
	wake_blocked(s, now);
	if (v->state == ST_BLOCKED)
		sb_printf(out, "%s: blocked until the services in its 'after' are ready\n", name);
	else
		sb_printf(out, "%s: %s\n", name, state_names[v->state]);
	return 0;
}

int sup_stop(struct sup *s, const char *name, int64_t now, struct strbuf *out)
{
	long i = lookup(s, name, out);
	if (i < 0)
		return -ENOENT;
	struct svc *v = &s->svc[i];
	v->want_up = false;
	v->start_again = false;
	kill_test(v);
	if (v->pid && !v->stop_sent)
		send_stop(s, (size_t)i, now);
	else if (!v->pid && v->state != ST_SUCCESS && v->state != ST_FAILED)
		v->state = ST_STOPPED;
	sb_printf(out, "%s: %s\n", name, state_names[v->state]);
	return 0;
}

int sup_restart(struct sup *s, const char *name, int64_t now, struct strbuf *out)
{
	long i = lookup(s, name, out);
	if (i < 0)
		return -ENOENT;
	struct svc *v = &s->svc[i];
	if (s->shutting_down) {
		sb_printf(out, "zinit is shutting down: not restarting %s", name);
		return -EBUSY;
	}
	if (!v->pid)
		return sup_start(s, name, now, out);
	v->want_up = true;
	v->start_again = true;
	kill_test(v);
	if (!v->stop_sent)
		send_stop(s, (size_t)i, now);
	sb_printf(out, "%s: stopping, then starting again\n", name);
	return 0;
}

struct logline {
	uint64_t seq;
	size_t svc;
	const char *text;
};

static int by_seq(const void *a, const void *b)
{
	const struct logline *x = a, *y = b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int sup_log(const struct sup *s, const char *name, struct strbuf *out)
{
	long only = -1;
	if (name && (only = lookup(s, name, out)) < 0)
		return -ENOENT;
	size_t n = 0;
	for (size_t i = 0; i < s->set.n; i++)
		if (only < 0 || (size_t)only == i)
			n += s->svc[i].ring.count;
	struct logline *all = calloc(n + 1, sizeof *all);
	if (!all) {
		sb_printf(out, "out of memory");
		return -ENOMEM;
	}
	size_t m = 0;
	for (size_t i = 0; i < s->set.n; i++) {
		if (only >= 0 && (size_t)only != i)
			continue;
		for (size_t k = 0; k < s->svc[i].ring.count; k++) {
			const struct ring_line *l = ring_get(&s->svc[i].ring, k);
			all[m++] = (struct logline){ l->seq, i, l->text };
		}
	}
	qsort(all, m, sizeof *all, by_seq);
	for (size_t k = 0; k < m; k++)
		sb_printf(out, "%s: %s\n", s->svc[all[k].svc].cfg->name, all[k].text);
	free(all);
	return 0;
}
