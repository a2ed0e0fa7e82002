// Simulation-only HBM: an AXI4 slave (INCR bursts of full 64-byte beats) over a dense memory
// of WORDS beats, zero at start (the accelerator clears what it uses at Setup).
//
// Reads are queued (up to 16 in flight) and each returns its first beat `latency` cycles after
// its request at the earliest; writes are answered once their last beat is in. Every handshake
// of the slave (arready, rvalid, awready, wready, bvalid) is held low in a cycle with chance
// `stall`/256 (``bolt_stall``, seeded with `seed` at reset). `latency`, `stall` and `seed`
// are ports so that one build serves every test.
module bolt_hbm_model #(
    parameter ADDR_WIDTH = 32,
    parameter WORDS = 1024
) (
    `BOLT_MEMORY_MODEL_PORTS
);
    reg [511:0] mem [0:WORDS-1];
    reg [31:0] now;
    // The settings are registered: logic fed by a top-level input is evaluated again at
    // every eval call of the simulator (twice a clock and more), logic fed by a register once.
    reg [15:0] latency_r;
    wire hold_ar, hold_r, hold_aw, hold_w, hold_b;
    bolt_stall stalls (.clk(clk), .rst(rst), .stall(stall), .seed(seed), .hold_ar(hold_ar),
        .hold_r(hold_r), .hold_aw(hold_aw), .hold_w(hold_w), .hold_b(hold_b));

    // Reads: a queue of (first beat, last beat index, due cycle).
    reg [31:0] rq_word [0:15];
    reg [7:0] rq_len [0:15];
    reg [31:0] rq_due [0:15];
    reg [4:0] rq_head, rq_tail;
    reg [7:0] r_beat;
    wire [3:0] rh = rq_head[3:0];
    wire rq_empty = rq_head == rq_tail;
    assign arready = (rq_tail - rq_head) != 5'd16 && !hold_ar;
    assign rvalid = !rq_empty && now >= rq_due[rh] && !hold_r;
    assign rdata = mem[rq_word[rh] + {24'd0, r_beat}];
    assign rlast = r_beat == rq_len[rh];
    assign rid = 1'b0;
    assign rresp = 2'b00;

    // Writes: a queue of (first beat, beats); W beats go to the oldest; one B per burst.
    reg [31:0] wq_word [0:15];
    reg [4:0] wq_head, wq_tail;
    reg [7:0] w_beat;
    reg [7:0] b_due;
    wire [3:0] wh = wq_head[3:0];
    assign awready = (wq_tail - wq_head) != 5'd16 && !hold_aw;
    assign wready = wq_head != wq_tail && !hold_w;
    assign bvalid = b_due != 0 && !hold_b;
    assign bid = 1'b0;
    assign bresp = 2'b00;
    wire [31:0] w_word = wq_word[wh] + {24'd0, w_beat};
    // A beat is written whole, its strobes as a bit mask: one delayed write of the memory
    // for Verilator to schedule and commit every clock, not one per byte lane (64 per
    // model, a few per cent of the whole simulation).
    wire [511:0] w_mask;
    genvar lane;
    generate
        for (lane = 0; lane < 64; lane = lane + 1) begin : strobes
            assign w_mask[lane * 8 +: 8] = {8{wstrb[lane]}};
        end
    endgenerate

    always @(posedge clk) begin
        now <= now + 1;
        latency_r <= latency;
        if (rst) begin
            rq_head <= 0; rq_tail <= 0; r_beat <= 0;
            wq_head <= 0; wq_tail <= 0; w_beat <= 0; b_due <= 0;
        end else begin
            if (arvalid && arready) begin
                rq_word[rq_tail[3:0]] <= araddr[ADDR_WIDTH-1:6];
                rq_len[rq_tail[3:0]] <= arlen;
                rq_due[rq_tail[3:0]] <= now + {16'd0, latency_r};
                rq_tail <= rq_tail + 1;
            end
            if (rvalid && rready) begin
                if (rlast) begin
                    r_beat <= 0;
                    rq_head <= rq_head + 1;
                end else
                    r_beat <= r_beat + 1;
            end
            if (awvalid && awready) begin
                wq_word[wq_tail[3:0]] <= awaddr[ADDR_WIDTH-1:6];
                wq_tail <= wq_tail + 1;
            end
            if (wvalid && wready) begin
                mem[w_word] <= (mem[w_word] & ~w_mask) | (wdata & w_mask);
                if (wlast) begin
                    w_beat <= 0;
                    wq_head <= wq_head + 1;
                end else
                    w_beat <= w_beat + 1;
            end
            b_due <= b_due + {7'd0, wvalid && wready && wlast} - {7'd0, bvalid && bready};
        end
    end
endmodule
