/*
 * tunnelmux server — the admin dashboard's files, embedded at build time by cmake/embed.cmake from
 * src/server/dashboard/ (index.html, app.js, style.css). Read-only data; each array is followed by
 * a NUL byte not counted in its _len.
 */
#ifndef TM_SERVER_DASHBOARD_H
#define TM_SERVER_DASHBOARD_H

#include <stddef.h>

extern const unsigned char dashboard_index_html[];
extern const size_t dashboard_index_html_len;
extern const unsigned char dashboard_app_js[];
extern const size_t dashboard_app_js_len;
extern const unsigned char dashboard_style_css[];
extern const size_t dashboard_style_css_len;

#endif
