// The port list both memory models (bolt_hbm_model, bolt_host_model) begin with: clock and
// reset, their settings (read latency in cycles, stall chance in 256, the stall generator's
// seed) and an AXI4 slave of INCR bursts of full 64-byte beats with one-bit IDs and
// ADDR_WIDTH-bit addresses (the model's parameter). The ports' names are the members of
// bolt.hdl.hbm.AxiSignature, which bolt.sim.card connects by name. This file comes first in
// bolt.sim.card.MODELS_VERILOG.
`define BOLT_MEMORY_MODEL_PORTS \
    input clk, \
    input rst, \
    input [15:0] latency, \
    input [7:0] stall, \
    input [31:0] seed, \
    input awid, input [ADDR_WIDTH-1:0] awaddr, input [7:0] awlen, input [2:0] awsize, \
    input [1:0] awburst, input awvalid, output awready, \
    input [511:0] wdata, input [63:0] wstrb, input wlast, input wvalid, output wready, \
    output bid, output [1:0] bresp, output bvalid, input bready, \
    input arid, input [ADDR_WIDTH-1:0] araddr, input [7:0] arlen, input [2:0] arsize, \
    input [1:0] arburst, input arvalid, output arready, \
    output rid, output [511:0] rdata, output [1:0] rresp, output rlast, output rvalid, \
    input rready
