// The executable's main() for bolt's Verilator builds under cocotb (bolt.sim.verilator).
//
// cocotb ships a main loop of its own; this one keeps its contract with cocotb's VPI library
// (the same callbacks in the same order in every time step, the same --trace option) and
// saves one evaluation of the design per time step. cocotb deposits its writes, among them
// every toggle of its C++ clock, as vpiInertialDelay puts, which are held until the time
// step's first evaluation is over: that evaluation sees no change at all (the previous time
// step ended with an evaluation after its last write), and yet Verilator runs the logic fed
// by top-level inputs at every evaluation. Here a time step evaluates the design only once a
// write has been applied, so the value-change callbacks (a RisingEdge of the clock) still run
// before the design reacts to the edge, as under cocotb's loop.
//
// The clock this loop drives (BOLT_MAIN_CLOCK) also skips the evaluation at its falling edge,
// where nothing changes (the designs are clocked on the rising edge) and which would still run
// every piece of logic fed by a top-level input: it sets the two variables that evaluation
// would change (`fall`). A build whose variables have other names, or that writes a waveform,
// evaluates at both edges.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "Vtop.h"
#include "Vtop___024root.h"
#include "verilated.h"
#include "verilated_vpi.h"

#if VM_TRACE
#if VM_TRACE_FST
#include <verilated_fst_c.h>
using WaveWriter = VerilatedFstC;
static const char* const kDefaultWaveFile = "dump.fst";
#else
#include <verilated_vcd_c.h>
using WaveWriter = VerilatedVcdC;
static const char* const kDefaultWaveFile = "dump.vcd";
#endif
#endif

extern "C" void vlog_startup_routines_bootstrap(void);

namespace {

uint64_t now = 0;  // simulation time, in the time precision's units

// A falling edge of the clock, as evaluating the design would take it: the design's view of
// the clock and Verilator's record of its value at the last evaluation (which finds the next
// rising edge) go low. Known only for a build that names its top module (BOLT_TOP_MODULE) and
// whose Verilator names these two as below; then the falling edges need no evaluation.
#ifdef BOLT_TOP_MODULE
#define BOLT_JOIN(a, b, c) a##b##c
#define BOLT_CLOCK_VIEW(top) BOLT_JOIN(, top, __DOT__clk)
#define BOLT_CLOCK_RECORD(top) BOLT_JOIN(__Vtrigprevexpr___TOP__, top, __DOT__clk__0)
template <typename Root>
constexpr bool kFallKnown = requires(Root& root) {
    root.BOLT_CLOCK_VIEW(BOLT_TOP_MODULE);
    root.BOLT_CLOCK_RECORD(BOLT_TOP_MODULE);
};
template <typename Root>
void fall(Root& root) {
    if constexpr (kFallKnown<Root>) {
        root.BOLT_CLOCK_VIEW(BOLT_TOP_MODULE) = 0;
        root.BOLT_CLOCK_RECORD(BOLT_TOP_MODULE) = 0;
    }
}
#else
template <typename Root>
constexpr bool kFallKnown = false;
template <typename Root>
void fall(Root&) {}
#endif

#if VM_TRACE
WaveWriter* waves = nullptr;
#endif

// Whether a signal may have changed since the value-change callbacks last ran: the design was
// evaluated or its clock turned over since. A write through VPI sets Verilator's evalNeeded
// until the next evaluation, so it is seen there. Verilator compares every watched signal
// with its last value at each call, a few per cent of the simulation's instructions at ten
// calls a cycle, most of them with nothing changed.
bool values_changed = true;

// Value-change callbacks may write signals, which may fire more callbacks: run them until
// none fires. Returns whether any did.
bool drain_value_callbacks() {
    if (!values_changed && !VerilatedVpi::evalNeeded()) return false;
    values_changed = false;
    bool fired = false;
    while (VerilatedVpi::callValueCbs()) fired = true;
    return fired;
}

// Evaluate the design if anything was written since it was last evaluated (always at the
// first call), then apply the writes the evaluation's callbacks held back, until nothing is
// left to evaluate; then the same around the ReadWrite callbacks. `clock_edge`: the clock
// this loop drives turns over in this time step, where cocotb's clock would have its write
// applied (after the first, skipped, evaluation, before the value-change callbacks); a
// falling edge is evaluated only if `evaluate_falling` or a write needs it.
void run_time_step(Vtop& top, bool& evaluated, bool clock_edge, bool evaluate_falling) {
    bool forced = false;
    do {
        do {
            if (VerilatedVpi::evalNeeded() || forced || !evaluated) {
                top.eval_step();
                evaluated = true;
                values_changed = true;
            }
            VerilatedVpi::clearEvalNeeded();
            forced = false;
            if (clock_edge) {
                values_changed = true;
                top.clk = !top.clk;
                clock_edge = false;
                forced = top.clk || evaluate_falling;
                if (!forced) fall(*top.rootp);
            }
            VerilatedVpi::doInertialPuts();
            drain_value_callbacks();
        } while (VerilatedVpi::evalNeeded() || forced);
        VerilatedVpi::callCbs(cbReadWriteSynch);
        VerilatedVpi::doInertialPuts();
        drain_value_callbacks();
    } while (VerilatedVpi::evalNeeded());
    top.eval_end_step();
}

bool ended = false;

void end_of_simulation() {
    if (ended) return;
    ended = true;
    VerilatedVpi::callCbs(cbEndOfSimulation);
#if VM_TRACE
    if (waves) waves->close();
#endif
}

}  // namespace

double sc_time_stamp() { return static_cast<double>(now); }

int main(int argc, char** argv) {
    bool wave_wanted = false;
    bool flush_waves = false;
    const char* wave_file = nullptr;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--trace")) {
            wave_wanted = true;
        } else if (!std::strcmp(argv[i], "--trace-flush")) {
            flush_waves = true;
        } else if (!std::strcmp(argv[i], "--trace-file") && i + 1 < argc) {
            wave_file = argv[++i];
        }
    }
#if !VM_TRACE
    if (wave_wanted) {
        std::fprintf(stderr, "--trace needs a build with waveform support\n");
        return 2;
    }
#endif

    Verilated::commandArgs(argc, argv);
    auto top = std::make_unique<Vtop>("");
    Verilated::fatalOnVpiError(false);  // cocotb probes handles that may not exist
#if VM_TRACE
    Verilated::traceEverOn(true);
    if (wave_wanted) {
        waves = new WaveWriter;  // never deleted: its destructor may wait on a thread at exit
        top->trace(waves, 99);
        waves->open(wave_file ? wave_file : kDefaultWaveFile);
    }
#endif

    vlog_startup_routines_bootstrap();
    Verilated::addExitCb([](void*) { end_of_simulation(); }, nullptr);
    VerilatedVpi::callCbs(cbStartOfSimulation);
    drain_value_callbacks();

    // The clock, when the environment asks this loop to drive it (BOLT_MAIN_CLOCK: its half
    // period in time steps): high from time 0, then turning over every half period, as
    // cocotb's own clock does once started, but with no VPI write and no timer callback.
    const char* const half_period_text = std::getenv("BOLT_MAIN_CLOCK");
    const uint64_t half_period = half_period_text ? std::strtoull(half_period_text, nullptr, 10) : 0;
    uint64_t next_edge = 0;

    bool evaluated = false;
    bool evaluate_falling = !kFallKnown<Vtop___024root>;
#if VM_TRACE
    evaluate_falling = evaluate_falling || waves;  // the waveform shows every edge
#endif
    constexpr uint64_t kNothingPending = ~uint64_t{0};
    while (!Verilated::gotFinish()) {
        const bool clock_edge = half_period && now == next_edge;
        if (clock_edge) next_edge += half_period;
        run_time_step(*top, evaluated, clock_edge, evaluate_falling);
        VerilatedVpi::callCbs(cbReadOnlySynch);
#if VM_TRACE
        if (waves) {
            waves->dump(now);
            if (flush_waves) waves->flush();
        }
#endif
        const uint64_t next = std::min({VerilatedVpi::cbNextDeadline(),
                                        top->eventsPending() ? top->nextTimeSlot()
                                                             : kNothingPending,
                                        half_period ? next_edge : kNothingPending});
        if (next == kNothingPending) break;  // no callback and no event left: the end
        now = next;
        VerilatedVpi::callCbs(cbNextSimTime);
        drain_value_callbacks();
        VerilatedVpi::callTimedCbs();  // cocotb's clock toggles and Timer wake-ups
        drain_value_callbacks();
    }

    top->final();
    end_of_simulation();
    return Verilated::threadContextp()->errorCount() > 0 ? 1 : 0;
}
