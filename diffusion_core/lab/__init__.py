"""The lab layer for the pages: background jobs, model comparison, trajectories, explore, cold views,
run plans and the server's work queue. The core never imports it."""
