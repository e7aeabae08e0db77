"""fastpid_bench: every PID solver side by side against the conic reference."""
