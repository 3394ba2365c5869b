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

    // Stretches longer than this share of the memory that matters (RAM, pmem, ACPI: what is
    // not merely reserved) are drawn at a fixed width instead of to scale: empty address
    // space, and a huge reserved range such as a 64-bit PCI window's.
    const BREAK_THRESHOLD = 0.25;
    const BREAK_WIDTH = 3; // percent of the drawing, per such stretch
    const COMPRESSIBLE = new Set(["reserved", "unusable", "other"]);

    /* Ranges [{start, size, type}] merged into intervals, each compressible when nothing
     * but reserved address space is in it. */
    function intervals(ranges) {
        const sorted = ranges.filter(r => r.size > 0)
                .map(r => ({ start: r.start, end: r.start + r.size, compressible: COMPRESSIBLE.has(r.type) }))
                .sort((a, b) => a.start - b.start);
        const merged = [];
        for (const r of sorted) {
            const last = merged[merged.length - 1];
            if (last && r.start < last.end) {
                last.end = Math.max(last.end, r.end);
                last.compressible = last.compressible && r.compressible;
            } else {
                merged.push({ ...r });
            }
        }
        return merged;
    }

    /*
     * A scale for ranges [{start, size, type}]: the address space from the first range to
     * the last as pieces laid side by side. Memory that matters, and whatever lies close
     * to it, is drawn linearly, on one scale for all of it; each empty stretch and each
     * reserved range longer than BREAK_THRESHOLD of that memory gets BREAK_WIDTH percent.
     * Returns {position(address) -> percent, breaks: [{at, width, start, end, kind: "gap"
     * | "reserved"}], spans: [{start, end, left, right}]} (spans: the linear pieces).
     */
    function scale(ranges) {
        const merged = intervals(ranges);
        if (merged.length === 0)
            return { position: () => 0, breaks: [], spans: [] };
        const matters = merged.filter(r => !r.compressible);
        const weight = (matters.length ? matters : merged).reduce((sum, r) => sum + (r.end - r.start), 0);
        const limit = BREAK_THRESHOLD * weight;
        // Pieces in address order: linear ones (joined across small gaps) and fixed ones.
        const pieces = [];
        const linear = (start, end) => {
            const last = pieces[pieces.length - 1];
            if (last && last.kind === "linear" && last.end === start)
                last.end = end;
            else
                pieces.push({ kind: "linear", start, end });
        };
        let cursor = merged[0].start;
        for (const r of merged) {
            if (r.start > cursor) {
                if (r.start - cursor > limit)
                    pieces.push({ kind: "gap", start: cursor, end: r.start });
                else
                    linear(cursor, r.start);
            }
            if (r.compressible && r.end - r.start > limit)
                pieces.push({ kind: "reserved", start: r.start, end: r.end });
            else
                linear(r.start, r.end);
            cursor = r.end;
        }
        const fixed = pieces.filter(p => p.kind !== "linear").length;
        const linearBytes = pieces.filter(p => p.kind === "linear")
                .reduce((sum, p) => sum + (p.end - p.start), 0);
        const drawable = 100 - BREAK_WIDTH * fixed;
        let offset = 0;
        for (const piece of pieces) {
            piece.left = offset;
            offset += piece.kind === "linear"
                ? (linearBytes ? drawable * (piece.end - piece.start) / linearBytes : 0)
                : BREAK_WIDTH;
            piece.right = offset;
        }
        function position(address) {
            for (const piece of pieces) {
                if (address <= piece.end) {
                    if (address <= piece.start)
                        return piece.left;
                    return piece.left + (piece.right - piece.left) *
                        (address - piece.start) / (piece.end - piece.start);
                }
            }
            return 100;
        }
        const breaks = pieces.filter(p => p.kind !== "linear").map(p => ({
            at: p.left, width: p.right - p.left, start: p.start, end: p.end, kind: p.kind,
        }));
        const spans = pieces.filter(p => p.kind === "linear")
                .map(({ start, end, left, right }) => ({ start, end, left, right }));
        return { position, breaks, spans };
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
