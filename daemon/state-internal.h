/* SPDX-License-Identifier: MIT */
#pragma once

#include <sqlite3.h>

#include "daemon/state.h"

struct qv_state {
	sqlite3 *db;
	char *path;
	unsigned txn_depth;
	unsigned savepoint_seq;
	bool sync_full; /* synchronous=FULL until the outermost commit */
};

static inline void sqlite3_finalizep(sqlite3_stmt **s)
{
	if (*s)
		sqlite3_finalize(*s);
}
#define _cleanup_stmt_ _cleanup_(sqlite3_finalizep)

/* Map an SQLite result code (extended codes on) to -errno. */
int st_errno(int rc);
int st_prepare(qv_state *st, const char *sql, sqlite3_stmt **ret_stmt);
/* Bind text, NULL binds SQL NULL. */
int st_bind_text(sqlite3_stmt *s, int idx, const char *text);
/* Step a statement that returns no rows; returns 0 or -errno. */
int st_step_done(qv_state *st, sqlite3_stmt *s);
/* Caller-owned copy of a text column (NULL stays NULL). -ENOMEM on failure. */
int st_column_strdup(sqlite3_stmt *s, int col, char **ret);
/* Prepare sql (one ?1 = key), run it and leave *ret_stmt on the first row:
 * 0, -ENOENT when there is none, or -errno. */
int st_select_by_key(qv_state *st, const char *sql, const char *key, sqlite3_stmt **ret_stmt);
int64_t st_now_ms(void);
/* Make the next commit durable (FULL), back to NORMAL after it. */
void st_sync_full(qv_state *st);
void st_sync_end(qv_state *st);
