/* SPDX-License-Identifier: MIT */
/* Long image copies (image.import, full image.clone) on worker threads.
 *
 * The loop thread validates the request and starts one pthread per copy.
 * The worker only touches the pool (its flock is per open file description,
 * so it does not serialise threads of this process) and the job's own
 * fields, under job->lock: it never sees json-c or RPC objects. When the copy
 * ends it writes the job's eventfd; the loop thread joins the thread and
 * finishes the call. A 250 ms loop timer sends the latest progress to the
 * caller (so at most 4 notifications a second) and sets the cancel flag once
 * the caller has disconnected; the engine then removes its temporary file. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <time.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/image-internal.h"
#include "storage/image-crypt.h"

#define PROGRESS_PERIOD_MS 250

struct image_job {
	struct image_state *st;
	struct image_job *next;
	qv_rpc_call *call;
	qv_rpc_client *client; /* ref, for notifications */
	char op_id[32];
	enum image_job_kind kind;
	char *src, *name;
	enum qv_image_format fmt;
	uint64_t bandwidth;
	bool verify;
	struct qv_secret *key; /* the copy's LUKS passphrase, or NULL */
	atomic_bool cancel;
	bool thread_started;
	pthread_t thread;
	int efd;
	qv_source *efd_src, *timer;
	uint64_t started_ms;

	pthread_mutex_t lock; /* guards everything below */
	uint64_t done, total, rate;
	bool finished;
	int result;
	struct qv_error err;
	struct qv_copy_stats stats;

	/* loop thread only */
	uint64_t sent_done;
	bool sent_any;
};

const char *image_job_op_id(const struct image_job *job)
{
	return job->op_id;
}

const char *image_job_dest(const struct image_job *job)
{
	return job->name;
}

struct image_job *image_job_next(struct image_state *st, struct image_job *job)
{
	return job ? job->next : st->jobs;
}

const char *image_job_src(const struct image_job *job, enum image_job_kind *ret_kind)
{
	*ret_kind = job->kind;
	return job->src;
}

struct image_job *image_job_find(struct image_state *st, const char *name, bool *ret_is_dest)
{
	for (struct image_job *j = st->jobs; j; j = j->next) {
		if (streq(j->name, name)) {
			*ret_is_dest = true;
			return j;
		}
		if (j->kind == IMAGE_JOB_CLONE && streq(j->src, name)) {
			*ret_is_dest = false;
			return j;
		}
	}
	return NULL;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Worker thread: record progress; apply the bandwidth limit by sleeping
 * until done/bandwidth seconds have passed (in slices, watching cancel). */
static void on_progress(uint64_t done, uint64_t total, uint64_t rate, void *userdata)
{
	struct image_job *job = userdata;

	pthread_mutex_lock(&job->lock);
	job->done = done;
	job->total = total;
	job->rate = rate;
	pthread_mutex_unlock(&job->lock);
	if (!job->bandwidth || done >= total)
		return;
	uint64_t due = job->started_ms + done * 1000 / job->bandwidth;
	for (uint64_t now = qv_now_ms(); now < due && !atomic_load(&job->cancel);
	     now = qv_now_ms())
		sleep_ms(due - now < 50 ? due - now : 50);
}

static void *worker(void *userdata)
{
	struct image_job *job = userdata;
	struct qv_copy_opts o;
	struct qv_copy_stats stats = {};
	struct qv_error err = {};
	int r;

	qv_copy_opts_init(&o);
	o.progress = on_progress;
	o.userdata = job;
	o.cancel = &job->cancel;
	o.verify = job->verify;
	/* A wrong passphrase fails before the copy (and again after it). */
	if (job->kind == IMAGE_JOB_IMPORT && job->key &&
	    (r = qv_image_check_key(job->src, job->key, &err)) < 0)
		qv_error_prefix(&err, "the passphrase does not open %s", job->src);
	else if (job->kind == IMAGE_JOB_IMPORT)
		r = qv_pool_import(job->st->pool, job->src, job->name, job->fmt, &o, &stats, &err);
	else
		r = qv_pool_clone(job->st->pool, job->src, job->name, QV_CLONE_FULL, &o, &stats,
				  &err);
	if (r >= 0)
		r = image_keys_after_copy(job->st, job->name, job->key, &err);
	if (r < 0 && !err.set)
		qv_error_set(&err, -r, NULL, "%s %s: %s",
			     job->kind == IMAGE_JOB_IMPORT ? "import" : "clone", job->src,
			     strerror(-r));
	pthread_mutex_lock(&job->lock);
	job->result = r;
	job->err = err;
	job->stats = stats;
	job->finished = true;
	pthread_mutex_unlock(&job->lock);
	uint64_t one = 1;
	if (write(job->efd, &one, sizeof(one)) < 0)
		log_debug("image job %s: eventfd write failed: %m", job->op_id);
	return NULL;
}

static void send_progress(struct image_job *job, bool force)
{
	uint64_t done, total, rate;

	pthread_mutex_lock(&job->lock);
	done = job->done;
	total = job->total;
	rate = job->rate;
	pthread_mutex_unlock(&job->lock);
	if (!total || (job->sent_any && done == job->sent_done && !force))
		return;
	if (!job->client || !qv_rpc_client_is_connected(job->client))
		return;
	json_object *p = json_object_new_object();
	json_object_object_add(p, "op_id", json_object_new_string(job->op_id));
	json_object_object_add(p, "done", json_object_new_int64((int64_t)done));
	json_object_object_add(p, "total", json_object_new_int64((int64_t)total));
	json_object_object_add(p, "rate", json_object_new_int64((int64_t)rate));
	(void)qv_rpc_client_notify(job->client, "progress", p);
	json_object_put(p);
	job->sent_any = true;
	job->sent_done = done;
}

static void on_tick(qv_source *s, void *userdata)
{
	struct image_job *job = userdata;

	job->timer = NULL; /* one-shot: freed after this callback */
	if (qv_rpc_call_client_gone(job->call)) {
		if (!atomic_exchange(&job->cancel, true))
			log_info("image %s: client went away, cancelling %s", job->name,
				 job->op_id);
	} else {
		send_progress(job, false);
	}
	if (qv_loop_add_timer(job->st->d->loop, PROGRESS_PERIOD_MS, on_tick, job, &job->timer) < 0)
		job->timer = NULL;
}

static void unlink_job(struct image_job *job)
{
	for (struct image_job **pp = &job->st->jobs; *pp; pp = &(*pp)->next)
		if (*pp == job) {
			*pp = job->next;
			break;
		}
}

static void job_free(struct image_job *job)
{
	if (!job)
		return;
	qv_source_remove(job->timer);
	qv_source_remove(job->efd_src);
	if (job->efd >= 0)
		close(job->efd);
	if (job->client)
		qv_rpc_client_unref(job->client);
	pthread_mutex_destroy(&job->lock);
	free(job->src);
	free(job->name);
	qv_secret_free(job->key);
	free(job);
}

/* Loop thread, after the worker has been joined. */
static void job_complete(struct image_job *job)
{
	struct image_state *st = job->st;
	struct qv_error err = {};

	unlink_job(job);
	if (job->result < 0) {
		log_info("image %s: %s %s failed: %s", job->name, job->op_id,
			 job->kind == IMAGE_JOB_IMPORT ? "import" : "clone", job->err.message);
		qv_rpc_call_error(job->call, &job->err);
		job_free(job);
		return;
	}
	send_progress(job, false); /* the engine's final done == total */
	json_object *res = image_info_json(st, job->name, &err);
	if (!res) {
		qv_rpc_call_error(job->call, &err);
		job_free(job);
		return;
	}
	json_object *s = json_object_new_object();
	json_object_object_add(s, "bytes_total", json_object_new_int64((int64_t)job->stats.bytes_total));
	json_object_object_add(s, "bytes_copied",
			       json_object_new_int64((int64_t)job->stats.bytes_copied));
	json_object_object_add(s, "holes_skipped",
			       json_object_new_int64((int64_t)job->stats.holes_skipped));
	json_object_object_add(s, "elapsed_ms",
			       json_object_new_int64((int64_t)(job->stats.elapsed_ns / 1000000)));
	json_object_object_add(s, "reflink", json_object_new_boolean(job->stats.used_reflink));
	json_object_object_add(s, "direct", json_object_new_boolean(job->stats.used_direct));
	json_object_object_add(s, "kernel_copy",
			       json_object_new_boolean(job->stats.used_kernel_copy));
	json_object_object_add(s, "verified", json_object_new_boolean(job->stats.verified));
	if (job->stats.verified) {
		char sum[17];
		snprintf(sum, sizeof(sum), "%016" PRIx64, job->stats.checksum);
		json_object_object_add(s, "checksum", json_object_new_string(sum));
	}
	json_object_object_add(res, "op_id", json_object_new_string(job->op_id));
	json_object_object_add(res, "stats", s);
	log_info("image %s: %s done (%s of %s, %" PRIu64 " bytes copied in %" PRIu64 " ms)",
		 job->name, job->op_id, job->kind == IMAGE_JOB_IMPORT ? "import" : "clone",
		 job->src, job->stats.bytes_copied, job->stats.elapsed_ns / 1000000);
	qv_rpc_call_reply(job->call, res);
	job_free(job);
}

static void on_done(qv_source *s, int fd, uint32_t revents, void *userdata)
{
	struct image_job *job = userdata;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno == EAGAIN)
		return;
	pthread_mutex_lock(&job->lock);
	bool finished = job->finished;
	pthread_mutex_unlock(&job->lock);
	if (!finished)
		return;
	pthread_join(job->thread, NULL);
	job->thread_started = false;
	job_complete(job);
}

int image_job_start(struct image_state *st, qv_rpc_call *call,
		    const struct image_job_params *p)
{
	struct image_job *job = calloc(1, sizeof(*job));
	int r;

	if (!job)
		return -ENOMEM;
	job->efd = -1;
	pthread_mutex_init(&job->lock, NULL);
	job->st = st;
	job->kind = p->kind;
	job->fmt = p->fmt;
	job->bandwidth = p->bandwidth;
	job->verify = p->verify;
	job->src = strdup(p->src);
	job->name = strdup(p->name);
	if (p->key && qv_secret_new(p->key->data, p->key->len, &job->key, NULL) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	snprintf(job->op_id, sizeof(job->op_id), "image-%u", ++st->next_op);
	if (!job->src || !job->name) {
		r = -ENOMEM;
		goto fail;
	}
	job->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (job->efd < 0) {
		r = -errno;
		goto fail;
	}
	r = qv_loop_add_io(st->d->loop, job->efd, EPOLLIN, on_done, job, &job->efd_src);
	if (r < 0)
		goto fail;
	r = qv_loop_add_timer(st->d->loop, PROGRESS_PERIOD_MS, on_tick, job, &job->timer);
	if (r < 0)
		goto fail;
	job->started_ms = qv_now_ms();
	r = -pthread_create(&job->thread, NULL, worker, job);
	if (r < 0)
		goto fail;
	job->thread_started = true;
	job->call = call;
	job->client = qv_rpc_client_ref(qv_rpc_call_client(call));
	job->next = st->jobs;
	st->jobs = job;
	log_info("image %s: %s started (%s %s)", job->name, job->op_id,
		 job->kind == IMAGE_JOB_IMPORT ? "import of" : "full clone of", job->src);
	return 0;
fail:
	job_free(job);
	return qv_call_fail(call, -r, QV_REASON_INTERNAL, "cannot start the copy: %s",
			    strerror(-r));
}

void image_jobs_free(struct image_state *st)
{
	while (st->jobs) {
		struct image_job *job = st->jobs;
		atomic_store(&job->cancel, true);
		if (job->thread_started)
			pthread_join(job->thread, NULL);
		job->thread_started = false;
		job_complete(job); /* unlinks and frees */
	}
}

json_object *image_jobs_json(struct image_state *st)
{
	json_object *a = json_object_new_array();

	for (struct image_job *j = st->jobs; j; j = j->next) {
		json_object *o = json_object_new_object();
		uint64_t done, total;
		pthread_mutex_lock(&j->lock);
		done = j->done;
		total = j->total;
		pthread_mutex_unlock(&j->lock);
		json_object_object_add(o, "op_id", json_object_new_string(j->op_id));
		json_object_object_add(o, "kind", json_object_new_string(
			j->kind == IMAGE_JOB_IMPORT ? "import" : "clone"));
		json_object_object_add(o, "source", json_object_new_string(j->src));
		json_object_object_add(o, "name", json_object_new_string(j->name));
		json_object_object_add(o, "done", json_object_new_int64((int64_t)done));
		json_object_object_add(o, "total", json_object_new_int64((int64_t)total));
		json_object_array_add(a, o);
	}
	return a;
}
