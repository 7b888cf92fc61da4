// pagelab: cflags=-pthread
// cxx_except: C++ exceptions, which go through libgcc's unwinder (it reads the shadow-stack
// pointer with RDSSPQ before it unwinds, a NOP on a CPU without CET): a throw through many
// frames caught by base class, destructors run in order on the way, a rethrow, nested
// exceptions, an exception_ptr carried from one thread to another, and threads that throw
// and catch at the same time (argv[1] throws per thread).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// Per thread: the workers unwind through Guards too, at the same time.
static thread_local std::string log_;

struct Guard {
    int n;
    explicit Guard(int n) : n(n) {}
    ~Guard() { log_ += std::to_string(n) + " "; }
};

struct Deep : std::runtime_error {
    int depth;
    Deep(int d) : std::runtime_error("deep"), depth(d) {}
};

static int descend(int n, int max) {
    Guard g(n);
    if (n == max) throw Deep(n);
    return descend(n + 1, max) + 1;
}

static void rethrow_once() {
    try {
        descend(0, 5);
    } catch (const Deep &) {
        log_ += "| ";
        throw;
    }
}

static void nested() {
    try {
        throw std::out_of_range("inner");
    } catch (...) {
        std::throw_with_nested(std::logic_error("outer"));
    }
}

static long worker(long n, int id) {
    long caught = 0;
    for (long i = 0; i < n; i++) {
        try {
            if ((i + id) % 3 == 0) throw std::runtime_error("r");
            if ((i + id) % 3 == 1) throw i;
            descend(0, (int)(i % 7));
        } catch (const std::runtime_error &) {
            caught += 1;
        } catch (long v) {
            caught += 100 + (v & 1);
        }
    }
    return caught;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 200;
    try {
        descend(0, 30);
    } catch (const std::exception &e) {
        std::printf("caught %s at depth %d\n", e.what(), dynamic_cast<const Deep &>(e).depth);
    }
    std::printf("destructors: %s\n", log_.c_str());
    log_.clear();
    try {
        rethrow_once();
    } catch (const Deep &d) {
        std::printf("rethrown %s %d, destructors: %s\n", d.what(), d.depth, log_.c_str());
    }
    try {
        nested();
    } catch (const std::logic_error &e) {
        std::printf("outer %s", e.what());
        try {
            std::rethrow_if_nested(e);
        } catch (const std::out_of_range &in) {
            std::printf(", nested %s\n", in.what());
        }
    }
    std::exception_ptr carried;
    std::thread t([&] {
        try {
            throw std::invalid_argument("from a thread");
        } catch (...) {
            carried = std::current_exception();
        }
    });
    t.join();
    try {
        std::rethrow_exception(carried);
    } catch (const std::invalid_argument &e) {
        std::printf("carried: %s\n", e.what());
    }
    try {
        throw 42;
    } catch (...) {
        std::printf("catch (...) of an int\n");
    }
    std::vector<long> results(4);
    std::vector<std::thread> threads;
    for (int id = 0; id < 4; id++) threads.emplace_back([&, id] { results[id] = worker(n, id); });
    for (auto &th : threads) th.join();
    std::printf("threads:");
    for (long r : results) std::printf(" %ld", r);
    std::printf("\n");
    return 0;
}
