// Simulation-only back-pressure for the memory models: one hold signal per AXI4 handshake
// (ar, r, aw, w, b), each high in a cycle with chance `stall`/256, independently of the other
// handshakes and of earlier cycles.
//
// A 64-bit xorshift state, stepped every clock, gives a fresh byte per handshake. (A shift
// register would not: its bytes are the same bit stream delayed, so one long run of zero bits
// held every handshake low for tens of cycles together, and a run long enough to overrun the
// accelerator's HBM budget turned up once in some hundred million cycles.)
module bolt_stall (
    input clk,
    input rst,
    input [7:0] stall,
    input [31:0] seed,
    output hold_ar, output hold_r, output hold_aw, output hold_w, output hold_b
);
    reg [63:0] state;
    reg [7:0] stall_r;      // registered: logic fed by a top-level input is evaluated at every eval
    wire [63:0] s1 = state ^ (state << 13);
    wire [63:0] s2 = s1 ^ (s1 >> 7);
    wire [63:0] next = s2 ^ (s2 << 17);
    assign hold_ar = state[7:0] < stall_r;
    assign hold_r = state[15:8] < stall_r;
    assign hold_aw = state[23:16] < stall_r;
    assign hold_w = state[31:24] < stall_r;
    assign hold_b = state[39:32] < stall_r;
    always @(posedge clk) begin
        stall_r <= stall;
        if (rst)
            state <= {seed, ~seed} | 64'd1;
        else
            state <= next;
    end
endmodule
