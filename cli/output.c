/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <inttypes.h>

#include "cli/output.h"
#include "common/macro.h"

struct out_table {
	size_t n_cols, n_rows, cap_rows;
	char **cells; /* n_rows * n_cols, row 0 = headers */
};

out_table *out_table_new(size_t n_cols, const char *const *headers)
{
	out_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->n_cols = n_cols;
	if (out_table_add(t, headers) < 0)
		return out_table_free(t);
	return t;
}

out_table *out_table_free(out_table *t)
{
	if (!t)
		return NULL;
	for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
	return NULL;
}

int out_table_add(out_table *t, const char *const *cells)
{
	if (t->n_rows == t->cap_rows) {
		size_t cap = t->cap_rows ? t->cap_rows * 2 : 8;
		char **p = realloc(t->cells, cap * t->n_cols * sizeof(*p));
		if (!p)
			return -ENOMEM;
		t->cells = p;
		t->cap_rows = cap;
	}
	for (size_t c = 0; c < t->n_cols; c++) {
		char *s = strdup(cells[c] ? cells[c] : "-");
		if (!s)
			return -ENOMEM; /* the row stays partially filled: not counted */
		/* replace control characters: names come from the daemon */
		for (char *p = s; *p; p++)
			if (iscntrl((unsigned char)*p))
				*p = '?';
		t->cells[t->n_rows * t->n_cols + c] = s;
	}
	t->n_rows++;
	return 0;
}

static void print_cell(FILE *f, const char *s, int pad, const char *sgr)
{
	int fill = pad - (int)strlen(s);

	if (sgr && *sgr)
		fprintf(f, "%s%s" OUT_SGR_RESET "%*s", sgr, s, fill > 0 ? fill : 0, "");
	else
		fprintf(f, "%-*s", pad, s);
}

void out_table_print(out_table *t, FILE *f)
{
	size_t width[t->n_cols], state_col = SIZE_MAX;
	bool color = out_color(f);

	memset(width, 0, sizeof(width));
	for (size_t r = 0; r < t->n_rows; r++)
		for (size_t c = 0; c < t->n_cols; c++) {
			size_t l = strlen(t->cells[r * t->n_cols + c]);
			if (l > width[c])
				width[c] = l;
		}
	for (size_t c = 0; color && c < t->n_cols; c++)
		if (streq(t->cells[c], "STATE"))
			state_col = c;
	for (size_t r = 0; r < t->n_rows; r++) {
		for (size_t c = 0; c < t->n_cols; c++) {
			const char *s = t->cells[r * t->n_cols + c];
			const char *sgr = !color ? NULL : r == 0 ? OUT_SGR_BOLD
					  : c == state_col ? out_state_sgr(s) : NULL;
			bool last = c + 1 == t->n_cols;
			print_cell(f, s, last ? 0 : (int)width[c], sgr);
			fputs(last ? "\n" : "  ", f);
		}
	}
}

void out_json(json_object *o, FILE *f)
{
	fprintf(f, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							     JSON_C_TO_STRING_SPACED |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
}

const char *out_json_compact(json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
}

const char *out_scalar(json_object *v, char *buf, size_t size)
{
	if (!v || json_object_is_type(v, json_type_null))
		return "-";
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	if (json_object_is_type(v, json_type_int)) {
		snprintf(buf, size, "%" PRId64, json_object_get_int64(v));
		return buf;
	}
	if (json_object_is_type(v, json_type_double)) {
		snprintf(buf, size, "%g", json_object_get_double(v));
		return buf;
	}
	return json_object_get_string(v); /* bool, or compact JSON */
}

const char *out_size(uint64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	size_t u = 0;

	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0 || v == (double)(uint64_t)v)
		snprintf(buf, size, "%.0f %s", v, units[u]);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
	return buf;
}

static void kv_collect(json_object *o, const char *prefix, out_table *t)
{
	char key[256], buf[64];

	if (json_object_is_type(o, json_type_object)) {
		json_object_object_foreach(o, k, v) {
			snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "", k);
			kv_collect(v, key, t);
		}
		return;
	}
	if (json_object_is_type(o, json_type_array)) {
		size_t n = json_object_array_length(o);
		bool scalars = true;
		for (size_t i = 0; i < n; i++) {
			json_type ty = json_object_get_type(json_object_array_get_idx(o, i));
			if (ty == json_type_object || ty == json_type_array)
				scalars = false;
		}
		if (scalars) { /* one line: "a, b, c" */
			size_t len = 0, cap = 256;
			char *line = calloc(1, cap);
			for (size_t i = 0; line && i < n; i++) {
				const char *s = out_scalar(json_object_array_get_idx(o, i), buf,
							   sizeof(buf));
				size_t need = len + strlen(s) + 3;
				if (need > cap) {
					char *p = realloc(line, cap = need * 2);
					if (!p)
						break;
					line = p;
				}
				len += (size_t)sprintf(line + len, "%s%s", i ? ", " : "", s);
			}
			out_table_add(t, (const char *[]){ prefix, line && *line ? line : "-" });
			free(line);
			return;
		}
		for (size_t i = 0; i < n; i++) {
			snprintf(key, sizeof(key), "%s[%zu]", prefix, i);
			kv_collect(json_object_array_get_idx(o, i), key, t);
		}
		return;
	}
	out_table_add(t, (const char *[]){ prefix, out_scalar(o, buf, sizeof(buf)) });
}

void out_kv(json_object *o, FILE *f)
{
	out_table *t = out_table_new(2, (const char *[]){ "", "" });

	if (!t)
		return;
	kv_collect(o, "", t);
	/* header row is empty: print rows 1.. with "key:" padded */
	size_t w = 0;
	for (size_t r = 1; r < t->n_rows; r++)
		if (strlen(t->cells[r * 2]) > w)
			w = strlen(t->cells[r * 2]);
	for (size_t r = 1; r < t->n_rows; r++)
		fprintf(f, "%s:%*s %s\n", t->cells[r * 2],
			(int)(w - strlen(t->cells[r * 2])), "", t->cells[r * 2 + 1]);
	out_table_free(t);
}

static bool is_size_key(const char *k)
{
	size_t l = strlen(k);
	return streq(k, "size") || (l > 5 && streq(k + l - 5, "_size")) ||
	       (l > 6 && streq(k + l - 6, "_bytes"));
}

void out_table_from_array(json_object *arr, const char *const *preferred, FILE *f)
{
	const char *cols[32];
	size_t n_cols = 0, n = json_object_array_length(arr);
	char headers[32][64], buf[32][64];

	for (const char *const *p = preferred; p && *p && n_cols < ARRAY_SIZE(cols); p++)
		cols[n_cols++] = *p;
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(o, json_type_object))
			continue;
		json_object_object_foreach(o, k, v) {
			json_type ty = json_object_get_type(v);
			bool have = false;
			if (ty == json_type_object || ty == json_type_array)
				continue;
			for (size_t c = 0; c < n_cols; c++)
				have = have || streq(cols[c], k);
			if (!have && n_cols < ARRAY_SIZE(cols))
				cols[n_cols++] = k;
		}
	}
	if (n_cols == 0)
		return;
	const char *hdr[32];
	for (size_t c = 0; c < n_cols; c++) {
		size_t l;
		for (l = 0; cols[c][l] && l < sizeof(headers[c]) - 1; l++)
			headers[c][l] = cols[c][l] == '_' ? ' ' : (char)toupper(cols[c][l]);
		headers[c][l] = '\0';
		hdr[c] = headers[c];
	}
	out_table *t = out_table_new(n_cols, hdr);
	if (!t)
		return;
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(arr, i), *v;
		const char *row[32];
		for (size_t c = 0; c < n_cols; c++) {
			if (!json_object_object_get_ex(o, cols[c], &v))
				v = NULL;
			if (v && is_size_key(cols[c]) && json_object_is_type(v, json_type_int))
				row[c] = out_size((uint64_t)json_object_get_int64(v), buf[c],
						  sizeof(buf[c]));
			else
				row[c] = out_scalar(v, buf[c], sizeof(buf[c]));
		}
		out_table_add(t, row);
	}
	out_table_print(t, f);
	out_table_free(t);
}
