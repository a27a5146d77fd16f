/* SPDX-License-Identifier: MIT */
/* image create|list|delete|clone|import|resize|rekey */
#include <fcntl.h>
#include <getopt.h>

#include "cli/output.h"
#include "cli/verbs.h"

/* Long copies: progress notifications show liveness, so no call deadline. */
#define IMAGE_COPY_TIMEOUT_MS (-1)

static int call_and_print(struct cli_ctx *ctx, const char *method, json_object *params,
			  int timeout_ms, bool progress, const char *done_fmt, const char *name)
{
	_cleanup_json_ json_object *res = NULL;
	int r;

	if (progress) {
		if ((r = cli_connect(ctx)) != EXIT_OK) {
			json_object_put(params);
			return r;
		}
		qv_rpc_set_notify_handler(ctx->conn, cli_progress_notify, NULL);
	}
	r = cli_call(ctx, method, params, timeout_ms, &res);
	if (progress)
		cli_progress_finish();
	if (r != EXIT_OK)
		return r;
	if (ctx->json)
		out_json(res, stdout);
	else
		printf(done_fmt, name);
	return EXIT_OK;
}

/* params.passphrase from FILE ("-": stdin), never from argv. One trailing
 * newline is dropped, so `echo pass > f` works. EXIT_OK or a usage error. */
static int read_passphrase(struct cli_ctx *ctx, const char *file, json_object *p)
{
	char buf[1025];
	size_t len = 0;
	int fd = streq(file, "-") ? 0 : open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return cli_usage_error(ctx, "cannot open %s: %m", file);
	for (ssize_t n; len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) != 0;) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (fd > 0)
				close(fd);
			return cli_usage_error(ctx, "cannot read %s: %m", file);
		}
		len += (size_t)n;
	}
	if (fd > 0)
		close(fd);
	if (len && buf[len - 1] == '\n')
		len--;
	if (len == 0 || len > 1024 || memchr(buf, '\0', len)) {
		explicit_bzero(buf, sizeof(buf));
		return cli_usage_error(ctx, "the passphrase in %s must be 1 to 1024 bytes, without "
				       "NUL bytes", file);
	}
	json_object_object_add(p, "passphrase", json_object_new_string_len(buf, (int)len));
	explicit_bzero(buf, sizeof(buf));
	return EXIT_OK;
}

int verb_image_create(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "format", required_argument, NULL, 'f' },
					      { "encrypt", no_argument, NULL, 'e' },
					      { "passphrase-file", required_argument, NULL, 'P' },
					      {} };
	const char *format = NULL, *pass_file = NULL;
	bool encrypt = false;
	uint64_t size;
	int c;

	while ((c = getopt_long(argc, argv, "f:eP:", opts, NULL)) != -1) {
		if (c == 'f')
			format = optarg;
		else if (c == 'e')
			encrypt = true;
		else if (c == 'P')
			pass_file = optarg;
		else
			return cli_usage_error(ctx, "invalid option");
	}
	if (format && !streq(format, "raw") && !streq(format, "qcow2"))
		return cli_usage_error(ctx, "--format must be raw or qcow2");
	if (pass_file && !encrypt)
		return cli_usage_error(ctx, "--passphrase-file needs --encrypt");
	if (encrypt && format && !streq(format, "qcow2"))
		return cli_usage_error(ctx, "encrypted images are qcow2");
	if (argc - optind != 2)
		return cli_usage_error(ctx, "expected NAME and SIZE");
	if (cli_parse_size(argv[optind + 1], &size) < 0 || size == 0 || size > INT64_MAX)
		return cli_usage_error(ctx, "invalid size \"%s\"", argv[optind + 1]);
	json_object *p = cli_params_name(argv[optind]);
	json_object_object_add(p, "size", json_object_new_int64((int64_t)size));
	if (format)
		json_object_object_add(p, "format", json_object_new_string(format));
	if (encrypt)
		json_object_object_add(p, "encrypt", json_object_new_boolean(true));
	if (pass_file && read_passphrase(ctx, pass_file, p) != EXIT_OK) {
		json_object_put(p);
		return EXIT_USAGE;
	}
	return call_and_print(ctx, "image.create", p, IMAGE_COPY_TIMEOUT_MS, false, "%s: created\n",
			      argv[optind]);
}

/* "a,b" from the used_by array ("-" when empty), into buf. */
static const char *join_users(json_object *img, char *buf, size_t size)
{
	json_object *arr;
	size_t off = 0;

	buf[0] = '\0';
	if (json_object_object_get_ex(img, "used_by", &arr) &&
	    json_object_is_type(arr, json_type_array))
		for (size_t i = 0; i < json_object_array_length(arr) && off < size; i++)
			off += (size_t)snprintf(buf + off, size - off, "%s%s", i ? "," : "",
						json_object_get_string(json_object_array_get_idx(arr, i)));
	return buf[0] ? buf : "-";
}

static const char *member(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static const char *size_member(json_object *o, const char *key, char *buf, size_t size)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v))
		return NULL;
	return out_size((uint64_t)json_object_get_int64(v), buf, size);
}

static void print_operations(json_object *res)
{
	json_object *ops;

	if (!json_object_object_get_ex(res, "operations", &ops) ||
	    !json_object_is_type(ops, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(ops); i++) {
		json_object *op = json_object_array_get_idx(ops, i);
		char a[32], b[32];
		printf("in progress: %s %s %s -> %s (%s of %s)\n", member(op, "op_id"),
		       member(op, "kind"), member(op, "source"), member(op, "name"),
		       size_member(op, "done", a, sizeof(a)), size_member(op, "total", b, sizeof(b)));
	}
}

int verb_image_list(struct cli_ctx *ctx, int argc, char **argv)
{
	static const char *const hdr[] = { "NAME", "FORMAT", "VIRTUAL", "ALLOCATED", "USED BY",
					   "BACKING" };
	_cleanup_json_ json_object *res = NULL;
	json_object *arr = NULL;
	int r;

	if (argc != 1)
		return cli_usage_error(ctx, "takes no arguments");
	if ((r = cli_call(ctx, "image.list", json_object_new_object(), CLI_CALL_TIMEOUT_MS, &res)) !=
	    EXIT_OK)
		return r;
	if (ctx->json) {
		out_json(res, stdout);
		return EXIT_OK;
	}
	if (!json_object_object_get_ex(res, "images", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		out_kv(res, stdout);
		return EXIT_OK;
	}
	out_table *t = out_table_new(ARRAY_SIZE(hdr), hdr);
	if (!t)
		return EXIT_FAILED;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *img = json_object_array_get_idx(arr, i);
		char vs[32], as[32], users[256];
		const char *backing = member(img, "backing");
		const char *slash = backing ? strrchr(backing, '/') : NULL;
		const char *row[] = { member(img, "name"), member(img, "format"),
				      size_member(img, "virtual_size", vs, sizeof(vs)),
				      size_member(img, "allocated_size", as, sizeof(as)),
				      join_users(img, users, sizeof(users)),
				      slash ? slash + 1 : backing };
		out_table_add(t, row);
	}
	out_table_print(t, stdout);
	out_table_free(t);
	print_operations(res);
	return EXIT_OK;
}

int verb_image_delete(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-')
		return cli_usage_error(ctx, "expected one image name");
	return call_and_print(ctx, "image.delete", cli_params_name(argv[1]), CLI_CALL_TIMEOUT_MS,
			      false, "%s: deleted\n", argv[1]);
}

/* Options shared by the copying verbs; 1 when c was one of them, 0 when
 * not, -1 on a bad value (usage error printed). */
static int copy_option(struct cli_ctx *ctx, int c, json_object *p)
{
	uint64_t rate;

	switch (c) {
	case 'b':
		if (cli_parse_size(optarg, &rate) < 0 || rate == 0 || rate > INT64_MAX)
			return cli_usage_error(ctx, "invalid --bandwidth \"%s\" (bytes/s, like 100M)",
					       optarg), -1;
		json_object_object_add(p, "bandwidth", json_object_new_int64((int64_t)rate));
		return 1;
	case 'V':
		json_object_object_add(p, "verify", json_object_new_boolean(true));
		return 1;
	default:
		return 0;
	}
}

int verb_image_clone(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "linked", no_argument, NULL, 'l' },
					      { "bandwidth", required_argument, NULL, 'b' },
					      { "verify", no_argument, NULL, 'V' },
					      {} };
	_cleanup_json_ json_object *p = json_object_new_object();
	bool linked = false;
	int c, r;

	while ((c = getopt_long(argc, argv, "lb:V", opts, NULL)) != -1) {
		if ((r = copy_option(ctx, c, p)) < 0)
			return EXIT_USAGE;
		if (r == 0 && c != 'l')
			return cli_usage_error(ctx, "invalid option");
		if (c == 'l')
			linked = true;
	}
	if (argc - optind != 2)
		return cli_usage_error(ctx, "expected SRC and DST");
	json_object_object_add(p, "source", json_object_new_string(argv[optind]));
	json_object_object_add(p, "name", json_object_new_string(argv[optind + 1]));
	json_object_object_add(p, "linked", json_object_new_boolean(linked));
	return call_and_print(ctx, "image.clone", TAKE_PTR(p), IMAGE_COPY_TIMEOUT_MS, true,
			      "%s: cloned\n", argv[optind + 1]);
}

int verb_image_import(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "format", required_argument, NULL, 'f' },
					      { "bandwidth", required_argument, NULL, 'b' },
					      { "verify", no_argument, NULL, 'V' },
					      { "passphrase-file", required_argument, NULL, 'P' },
					      {} };
	_cleanup_json_ json_object *p = json_object_new_object();
	_cleanup_free_ char *abs = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "f:b:VP:", opts, NULL)) != -1) {
		if ((r = copy_option(ctx, c, p)) < 0)
			return EXIT_USAGE;
		if (c == 'P' && read_passphrase(ctx, optarg, p) != EXIT_OK)
			return EXIT_USAGE;
		if (r == 0 && c != 'f' && c != 'P')
			return cli_usage_error(ctx, "invalid option");
		if (c == 'f' && !streq(optarg, "raw") && !streq(optarg, "qcow2"))
			return cli_usage_error(ctx, "--format must be raw or qcow2");
		if (c == 'f')
			json_object_object_add(p, "format", json_object_new_string(optarg));
	}
	if (argc - optind != 2)
		return cli_usage_error(ctx, "expected PATH and NAME");
	/* the daemon resolves paths itself: send an absolute one */
	abs = realpath(argv[optind], NULL);
	json_object_object_add(p, "path", json_object_new_string(abs ? abs : argv[optind]));
	json_object_object_add(p, "name", json_object_new_string(argv[optind + 1]));
	return call_and_print(ctx, "image.import", TAKE_PTR(p), IMAGE_COPY_TIMEOUT_MS, true,
			      "%s: imported\n", argv[optind + 1]);
}

int verb_image_resize(struct cli_ctx *ctx, int argc, char **argv)
{
	uint64_t size;

	if (argc != 3 || argv[1][0] == '-')
		return cli_usage_error(ctx, "expected NAME and SIZE");
	if (cli_parse_size(argv[2], &size) < 0 || size == 0 || size > INT64_MAX)
		return cli_usage_error(ctx, "invalid size \"%s\"", argv[2]);
	json_object *p = cli_params_name(argv[1]);
	json_object_object_add(p, "size", json_object_new_int64((int64_t)size));
	return call_and_print(ctx, "image.resize", p, CLI_CALL_TIMEOUT_MS, false, "%s: resized\n",
			      argv[1]);
}

int verb_image_rekey(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "passphrase-file", required_argument, NULL, 'P' },
					      {} };
	_cleanup_json_ json_object *p = json_object_new_object();
	int c;

	while ((c = getopt_long(argc, argv, "P:", opts, NULL)) != -1) {
		if (c != 'P')
			return cli_usage_error(ctx, "invalid option");
		if (read_passphrase(ctx, optarg, p) != EXIT_OK)
			return EXIT_USAGE;
	}
	if (argc - optind != 1)
		return cli_usage_error(ctx, "expected one image name");
	json_object_object_add(p, "name", json_object_new_string(argv[optind]));
	return call_and_print(ctx, "image.rekey", TAKE_PTR(p), CLI_CALL_TIMEOUT_MS, false,
			      "%s: rekeyed (the old passphrase no longer opens it)\n",
			      argv[optind]);
}
