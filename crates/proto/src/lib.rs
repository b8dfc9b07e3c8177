//! Sans-IO application protocol of Switchboard: the envelope every transport carries,
//! cursors, multiplexed commands and replies, and pure encoders for the SSE, HTTP-streaming
//! and long-poll bodies. No sockets, no clocks.
