# puma in cluster mode on baton's socket: a bind that matches a LISTEN_FDS
# socket is "Activated" instead of bound.
bind "tcp://127.0.0.1:8080"
workers 2
threads 2, 4
# Exit 0 after a graceful stop (by default the master ends by re-raising SIGTERM).
raise_exception_on_sigterm false
