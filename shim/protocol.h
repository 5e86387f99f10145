/* The protocol between baton and libbaton_shim: the environment baton hands a
 * shim-mode app, and what the shim reports back over NOTIFY_SOCKET. The one
 * definition of these names, for the shim (C) and for baton (C++): string
 * literals, so that each can be pasted into a longer literal
 * (BATON_SHIM_NOTIFY "=" BATON_SHIM_LOADED "\n").
 * systemd's own names (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES, NOTIFY_SOCKET,
 * READY=1, STATUS=, STOPPING=1) are systemd's protocol, not defined here. */
#ifndef BATON_SHIM_PROTOCOL_H
#define BATON_SHIM_PROTOCOL_H

/* Environment, set by baton for a shim-mode app only. */

/* The LD_PRELOAD value for the app (the shim, then any LD_PRELOAD baton's
 * environment had). baton sets it instead of LD_PRELOAD so that the shim is
 * not loaded into baton's own exec trampoline; the trampoline moves it to
 * LD_PRELOAD and removes it just before it execs the app. */
#define BATON_ENV_LD_PRELOAD "BATON_LD_PRELOAD"

/* The drain signal, as a decimal number (config drain_signal; "15"): the
 * shim intercepts it to drain the app, then hands the app that signal.
 * Unset, or not a usable signal: SIGTERM. */
#define BATON_ENV_SHIM_DRAIN_SIGNAL "BATON_SHIM_DRAIN_SIGNAL"

/* Notify messages: the key the shim reports its state with, one value per
 * message, "BATON_SHIM=VALUE", beside a STATUS= line saying it in words. */
#define BATON_SHIM_NOTIFY "BATON_SHIM"

/* The shim's constructor took over the inherited sockets (LISTEN_FDS) in the
 * app's process: without this message before the ready timeout, baton says
 * the shim never loaded (a static or setuid binary, say). */
#define BATON_SHIM_LOADED "loaded"

/* The app bound an address that no inherited socket matches, on a port one
 * of them uses; the bind failed with EADDRINUSE and baton rolls the start
 * back. STATUS= names the address. */
#define BATON_SHIM_REFUSED_BIND "refused-bind"

#endif
