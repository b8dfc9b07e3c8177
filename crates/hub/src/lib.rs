//! Channels, cursors, history, presence and fan-out. Knows nothing of HTTP or wire formats
//! beyond the bytes it is handed.
