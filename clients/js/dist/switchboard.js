// The browser client is built into this file (clients/js).
