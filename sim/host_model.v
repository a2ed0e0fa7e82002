// Simulation-only host-memory port: an AXI4 slave (INCR bursts of full 64-byte beats) whose
// bytes stay in Python, which serves it a whole burst at a time.
//
// A burst that needs Python (a read once it is the oldest, a write once its last beat is in)
// is put on the `req_*` outputs and `req_toggle` flips; Python answers within the same
// simulated instant (a read's beats on `rd_data`, beat 0 in the low bits) and sets
// `ack_toggle` equal to `req_toggle`, so the model goes on at the next clock edge. Python thus
// wakes once per burst, not once per clock.
//
// Reads are queued (up to 4 in flight) and each returns its first beat `latency` cycles after
// its request at the earliest; a write is answered once Python has taken it. With `rate` set,
// read beats follow each other at a link's bandwidth: a beat (64 bytes) leaves once 64 bytes
// of credit are in, the credit growing by `rate` bytes a cycle (0: a beat every cycle). Every
// handshake of the slave (arready, rvalid, awready, wready, bvalid) is held low in a cycle with
// chance `stall`/256 (``bolt_stall``, seeded with `seed` at reset).
module bolt_host_model #(
    parameter ADDR_WIDTH = 48,
    parameter BEATS = 64              // the longest burst
) (
    `BOLT_MEMORY_MODEL_PORTS,
    input [7:0] rate,
    output reg req_toggle,
    output reg req_write,
    output reg [ADDR_WIDTH-1:0] req_addr,
    output reg [7:0] req_beats,
    output reg [BEATS*512-1:0] wr_data,
    input [BEATS*512-1:0] rd_data,
    input ack_toggle
);
    reg [31:0] now;
    // Python's inputs are registered (read data into `r_buffer`), as in the HBM model: logic
    // fed by a top-level input is evaluated again at every eval call of the simulator.
    reg [15:0] latency_r;
    reg [7:0] rate_r;
    reg [9:0] credit;               // bytes the link may send: at most a beat and a cycle's
    wire hold_ar, hold_r, hold_aw, hold_w, hold_b;
    bolt_stall stalls (.clk(clk), .rst(rst), .stall(stall), .seed(seed), .hold_ar(hold_ar),
        .hold_r(hold_r), .hold_aw(hold_aw), .hold_w(hold_w), .hold_b(hold_b));
    wire python_busy = req_toggle != ack_toggle;

    // Reads: a queue of (address, last beat index, due cycle); the oldest is fetched from
    // Python (`r_fetched`), then its beats stream from `r_buffer`, a vector rather than an
    // array of beats (one delayed write for Verilator to commit every clock, not one a beat).
    reg [BEATS*512-1:0] r_buffer;
    reg [ADDR_WIDTH-1:0] rq_addr [0:3];
    reg [7:0] rq_len [0:3];
    reg [31:0] rq_due [0:3];
    reg [2:0] rq_head, rq_tail;
    reg r_fetching, r_fetched;
    reg [7:0] r_beat;
    wire [1:0] rh = rq_head[1:0];
    wire rq_empty = rq_head == rq_tail;
    assign arready = (rq_tail - rq_head) != 3'd4 && !hold_ar;
    assign rvalid = r_fetched && now >= rq_due[rh] && !hold_r && (rate_r == 0 || credit >= 10'd64);
    wire [9:0] credit_next = credit + {2'b0, rate_r} - ((rvalid && rready) ? 10'd64 : 10'd0);
    assign rdata = r_buffer[r_beat * 512 +: 512];
    assign rlast = r_beat == rq_len[rh];
    assign rid = 1'b0;
    assign rresp = 2'b00;

    // Writes: a queue of (address, last beat index); W beats of the oldest collect in
    // `wr_data`; once its last beat is in (`w_full`) Python takes it, then one B answers it.
    reg [ADDR_WIDTH-1:0] wq_addr [0:3];
    reg [7:0] wq_len [0:3];
    reg [2:0] wq_head, wq_tail;
    reg w_full, w_taking;
    reg [7:0] w_beat;
    reg [7:0] b_due;
    wire [1:0] wh = wq_head[1:0];
    assign awready = (wq_tail - wq_head) != 3'd4 && !hold_aw;
    assign wready = wq_head != wq_tail && !w_full && !hold_w;
    assign bvalid = b_due != 0 && !hold_b;
    assign bid = 1'b0;
    assign bresp = 2'b00;

    always @(posedge clk) begin
        now <= now + 1;
        latency_r <= latency;
        rate_r <= rate;
        credit <= credit_next > 10'd64 + {2'b0, rate_r} ? 10'd64 + {2'b0, rate_r} : credit_next;
        if (rst) begin
            req_toggle <= ack_toggle;
            rq_head <= 0; rq_tail <= 0; r_fetching <= 0; r_fetched <= 0; r_beat <= 0;
            wq_head <= 0; wq_tail <= 0; w_full <= 0; w_taking <= 0; w_beat <= 0; b_due <= 0;
        end else begin
            if (arvalid && arready) begin
                rq_addr[rq_tail[1:0]] <= araddr;
                rq_len[rq_tail[1:0]] <= arlen;
                rq_due[rq_tail[1:0]] <= now + {16'd0, latency_r};
                rq_tail <= rq_tail + 1;
            end
            if (awvalid && awready) begin
                wq_addr[wq_tail[1:0]] <= awaddr;
                wq_len[wq_tail[1:0]] <= awlen;
                wq_tail <= wq_tail + 1;
            end
            if (wvalid && wready) begin
                wr_data[w_beat * 512 +: 512] <= wdata;
                w_beat <= w_beat + 1;
                if (wlast) w_full <= 1;
            end

            // Python: one burst at a time, a finished write first.
            if (!python_busy) begin
                if (w_taking) begin
                    w_taking <= 0; w_full <= 0; w_beat <= 0;
                    wq_head <= wq_head + 1;
                end
                if (r_fetching) begin
                    r_fetching <= 0; r_fetched <= 1; r_beat <= 0;
                    r_buffer <= rd_data;
                end
                if (w_full && !w_taking) begin
                    req_write <= 1; req_addr <= wq_addr[wh]; req_beats <= wq_len[wh] + 1;
                    req_toggle <= !req_toggle;
                    w_taking <= 1;
                end else if (!rq_empty && !r_fetching && !r_fetched) begin
                    req_write <= 0; req_addr <= rq_addr[rh]; req_beats <= rq_len[rh] + 1;
                    req_toggle <= !req_toggle;
                    r_fetching <= 1;
                end
            end

            if (rvalid && rready) begin
                r_beat <= r_beat + 1;
                if (rlast) begin
                    r_fetched <= 0;
                    rq_head <= rq_head + 1;
                end
            end
            b_due <= b_due + {7'd0, w_taking && !python_busy} - {7'd0, bvalid && bready};
        end
    end
endmodule
