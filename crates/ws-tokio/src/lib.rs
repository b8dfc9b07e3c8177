//! Drives the sans-IO `switchboard-ws` codec over tokio streams.
