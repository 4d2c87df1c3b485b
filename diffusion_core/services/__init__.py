"""The app's services: training runs launched as subprocesses (jobs), read back (run_status) and estimated
(estimates), the server's work queue, the model catalogue, run plans and who owns a run. Above the library: the
core never imports it."""
