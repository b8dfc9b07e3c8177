//! Switchboard's HTTP server: routes, transports, backend API.
