/*
 * pmemd's Cockpit page: the pure parts (no DOM, no bus), as window.pmemdLayout.
 *
 *   scale(ranges)            a drawing scale for sparse physical address ranges
 *   formatSize(bytes)        "512 MiB"
 *   hex(n)                   "0x40000000"
 *   parseProblems(text)      io.pmemd1.Error.InvalidConfig's text -> [{line, column, key, message}]
 *   diffLines(a, b)          a line diff: [{op: " " | "-" | "+", text}]
 *
 * Addresses are 64-bit: D-Bus "t" values reach JavaScript as Numbers, exact below 2^53
 * (8 PiB), which every physical address map is.
 */
"use strict";

(function () {
    const UNITS = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

    function formatSize(bytes) {
        let value = bytes;
        let unit = 0;
        while (value >= 1024 && unit < UNITS.length - 1) {
            value /= 1024;
            unit += 1;
        }
        if (unit === 0)
            return `${bytes} bytes`;
        const text = Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 2 : 1);
        return `${text} ${UNITS[unit]}`;
    }

    function hex(value) {
        return "0x" + value.toString(16);
    }

    // Stretches with nothing in them longer than this share of the populated address
    // space are drawn as a fixed-width break instead of to scale.
    const BREAK_THRESHOLD = 0.25;
    const BREAK_WIDTH = 3; // percent of the drawing, per break

    /*
     * A scale for ranges [{start, size}]: the populated address space is drawn linearly;
     * each empty stretch longer than BREAK_THRESHOLD of it is replaced by a break of
     * BREAK_WIDTH percent. Returns {position(address) -> percent, breaks: [{at, start,
     * end}], spans: [{start, end}]}; position() is exact (linear) within a span.
     */
    function scale(ranges) {
        const sorted = ranges.filter(r => r.size > 0)
                .map(r => ({ start: r.start, end: r.start + r.size }))
                .sort((a, b) => a.start - b.start);
        if (sorted.length === 0)
            return { position: () => 0, breaks: [], spans: [] };
        // Merge into populated stretches.
        const merged = [];
        for (const r of sorted) {
            const last = merged[merged.length - 1];
            if (last && r.start <= last.end)
                last.end = Math.max(last.end, r.end);
            else
                merged.push({ start: r.start, end: r.end });
        }
        const populated = merged.reduce((sum, r) => sum + (r.end - r.start), 0);
        // Spans: merged stretches joined across small gaps.
        const spans = [{ start: merged[0].start, end: merged[0].end }];
        for (const r of merged.slice(1)) {
            const last = spans[spans.length - 1];
            if (r.start - last.end > BREAK_THRESHOLD * populated)
                spans.push({ start: r.start, end: r.end });
            else
                last.end = r.end;
        }
        const total = spans.reduce((sum, s) => sum + (s.end - s.start), 0);
        const drawable = 100 - BREAK_WIDTH * (spans.length - 1);
        let offset = 0;
        const placed = spans.map((span, index) => {
            const left = offset + (index > 0 ? BREAK_WIDTH : 0);
            offset = left + drawable * (span.end - span.start) / total;
            return { start: span.start, end: span.end, left, right: offset };
        });
        const breaks = placed.slice(1).map((span, index) => ({
            at: placed[index].right, start: placed[index].end, end: span.start,
        }));
        function position(address) {
            for (const span of placed) {
                if (address <= span.end) {
                    if (address < span.start)
                        return span.left;
                    return span.left + (span.right - span.left) *
                        (address - span.start) / (span.end - span.start);
                }
            }
            return 100;
        }
        return { position, breaks, spans: placed };
    }

    /* The problems in an InvalidConfig error's text: one "<input>:LINE:COLUMN: key:
     * message" line each, followed by the source line and a caret (pmemd's documented
     * format). */
    function parseProblems(text) {
        const problems = [];
        for (const line of text.split("\n")) {
            const found = /^[^\s:][^:]*:(\d+):(\d+): (.*)$/.exec(line);
            if (!found)
                continue;
            const rest = found[3];
            const colon = rest.indexOf(": ");
            const key = colon > 0 && !/\s/.test(rest.slice(0, colon)) ? rest.slice(0, colon) : "";
            problems.push({
                line: Number(found[1]),
                column: Number(found[2]),
                key,
                message: key ? rest.slice(colon + 2) : rest,
            });
        }
        return problems;
    }

    /* A line diff (longest common subsequence): config files are a few hundred lines. */
    function diffLines(before, after) {
        const a = before.split("\n");
        const b = after.split("\n");
        const rows = a.length + 1;
        const cols = b.length + 1;
        const common = new Array(rows * cols).fill(0);
        for (let i = a.length - 1; i >= 0; i--) {
            for (let j = b.length - 1; j >= 0; j--) {
                common[i * cols + j] = a[i] === b[j]
                    ? common[(i + 1) * cols + j + 1] + 1
                    : Math.max(common[(i + 1) * cols + j], common[i * cols + j + 1]);
            }
        }
        const out = [];
        let i = 0;
        let j = 0;
        while (i < a.length || j < b.length) {
            if (i < a.length && j < b.length && a[i] === b[j]) {
                out.push({ op: " ", text: a[i] });
                i += 1;
                j += 1;
            } else if (j < b.length && (i === a.length ||
                                        common[i * cols + j + 1] >= common[(i + 1) * cols + j])) {
                out.push({ op: "+", text: b[j] });
                j += 1;
            } else {
                out.push({ op: "-", text: a[i] });
                i += 1;
            }
        }
        return out;
    }

    window.pmemdLayout = { formatSize, hex, scale, parseProblems, diffLines, BREAK_WIDTH };
}());
