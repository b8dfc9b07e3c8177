// The uWebSockets peer `switchboard bench` is compared against (built by scripts/build-uws.sh,
// never by cargo, CI or the tests; usage: uws-peer [127.0.0.1:]PORT): /echo echoes every message; any other path subscribes to
// the topic "room"; a message on such a socket, or the body of a POST to any path, is
// published to "room" as it came (subscribers get the bare payload, no envelope).
#include "App.h"
#include <string>
#include <cstdlib>
#include <cstring>
struct Data {};
int main(int argc, char **argv) {
    // PORT or 127.0.0.1:PORT (the bench's {ADDR}); it always listens on 127.0.0.1.
    const char *arg = argc > 1 ? argv[1] : "9001";
    const char *colon = strrchr(arg, ':');
    int port = atoi(colon ? colon + 1 : arg);
    uWS::App app;
    uWS::App *a = &app;
    app.ws<Data>("/echo", {
        .compression = uWS::DISABLED, .maxPayloadLength = 16 * 1024 * 1024, .idleTimeout = 120,
        .maxBackpressure = 1024 * 1024,
        .message = [](auto *ws, std::string_view m, uWS::OpCode op) { ws->send(m, op); },
    }).ws<Data>("/*", {
        .compression = uWS::DISABLED, .maxPayloadLength = 16 * 1024 * 1024, .idleTimeout = 120,
        .maxBackpressure = 16 * 1024 * 1024,
        .open = [](auto *ws) { ws->subscribe("room"); },
        .message = [a](auto *, std::string_view m, uWS::OpCode op) { a->publish("room", m, op); },
    }).post("/*", [a](auto *res, auto *) {
        auto *buf = new std::string();
        res->onAborted([buf]() { delete buf; });
        res->onData([a, res, buf](std::string_view c, bool last) {
            buf->append(c.data(), c.size());
            if (last) { a->publish("room", *buf, uWS::OpCode::TEXT); res->end("ok"); delete buf; }
        });
    }).listen("127.0.0.1", port, [](auto *ls) { if (!ls) std::exit(1); }).run();
}
