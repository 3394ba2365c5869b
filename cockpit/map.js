/*
 * pmemd's Cockpit page: the memory map, drawn, as window.pmemdMap.
 *
 *   draw(places, ranges, onShow)   three rows on one scale (layout.js): the firmware's
 *                                  map, this boot's, the next boot's regions over the
 *                                  usable RAM; an axis, a legend and the firmware's map as
 *                                  a table; onShow(text) gets a range's exact description
 *                                  when it is hovered or focused
 *
 * A range is {start, size, type, label, name?, memmap?}: type as GetMemoryMap's, or
 * "region" (a region of the config) or "kernel" (this boot's kernel image).
 */
"use strict";

(function () {
    const L = window.pmemdLayout;
    const { el, patch } = window.pmemdDom;

    const TYPE_NAMES = {
        usable: "usable RAM",
        reserved: "reserved",
        acpi: "ACPI tables",
        "acpi-nvs": "ACPI NVS",
        unusable: "unusable",
        "persistent-legacy": "emulated pmem",
        persistent: "persistent memory",
        "soft-reserved": "soft reserved",
        other: "other",
        region: "pmemd region",
        kernel: "kernel image",
    };

    function describeRange(r) {
        const end = r.start + r.size - 1;
        const what = r.type === "region"
            ? `region ${r.label} (next boot)`
            : `${r.name ? "region " + r.name + ": " : ""}${r.label || TYPE_NAMES[r.type] || r.type}`;
        const option = r.memmap ? `, ${r.memmap}` : "";
        return `${what}: ${L.hex(r.start)}–${L.hex(end)}, ${L.formatSize(r.size)}${option}`;
    }

    function renderMapRow(title, ranges, scale, rowClass, onShow) {
        const track = el("div", { class: "map-track", role: "list", "aria-label": title });
        for (const r of ranges) {
            const left = scale.position(r.start);
            const width = scale.position(r.start + r.size) - left;
            const text = describeRange(r);
            const segment = el("div", {
                class: `map-segment type-${r.type}`,
                tabIndex: 0,
                role: "listitem",
                title: text,
                "aria-label": text,
                "data-start": String(r.start),
                "data-size": String(r.size),
                "data-type": r.type,
            });
            if (r.name || r.type === "region")
                segment.dataset.region = r.name || r.label;
            segment.style.left = `${left}%`;
            segment.style.width = `${Math.max(width, 0)}%`;
            if (width > 6 && (r.name || r.type === "region"))
                segment.append(el("span", { class: "map-label" }, r.name || r.label));
            const show = () => onShow(text);
            segment.addEventListener("focus", show);
            segment.addEventListener("mouseenter", show);
            track.append(segment);
        }
        for (const stretch of scale.breaks) {
            const what = stretch.kind === "gap" ? "no memory" : "reserved";
            const mark = el("div", {
                class: `map-break break-${stretch.kind}`,
                title: `${what}: ${L.hex(stretch.start)}–${L.hex(stretch.end - 1)}, ` +
                       `${L.formatSize(stretch.end - stretch.start)} (not to scale)`,
            });
            mark.style.left = `${stretch.at}%`;
            mark.style.width = `${stretch.width}%`;
            track.append(mark);
        }
        return el("div", { class: `map-row ${rowClass}` },
                  el("div", { class: "map-row-title" }, title), track);
    }

    /* Addresses under the map: where each span starts, and where the last one ends,
     * leaving out a label that would run into the one before it. */
    function renderAxis(scale) {
        const axis = el("div", { class: "map-axis", "aria-hidden": "true" });
        const pieces = [...scale.spans, ...scale.breaks.map(b => ({ start: b.start, left: b.at }))]
                .sort((a, b) => a.left - b.left);
        const marks = pieces.map(piece => [piece.start, piece.left]);
        const last = [...scale.spans.map(s => s.end), ...scale.breaks.map(b => b.end)];
        if (last.length)
            marks.push([Math.max(...last), 100]);
        const shown = [];
        marks.forEach(([address, at], index) => {
            const final = index === marks.length - 1;
            const previous = shown[shown.length - 1];
            if (previous && at - previous.at < 12) {
                if (!final || shown.length === 1)
                    return;
                shown.pop(); // the end of the map wins over a span's start beside it
            }
            shown.push({ address, at, final });
        });
        for (const [index, { address, at, final }] of shown.entries()) {
            const tick = el("span", { class: "map-tick" }, L.hex(address));
            tick.classList.toggle("first", index === 0);
            tick.classList.toggle("last", final);
            tick.style.left = `${at}%`;
            axis.append(tick);
        }
        return el("div", { class: "map-row" }, el("div", { class: "map-row-title" }), axis);
    }

    function draw(places, ranges, onShow) {
        const { firmware, boot, next } = ranges;
        const scale = L.scale([...firmware, ...boot, ...next]);
        patch(places.map, [
            renderMapRow("Firmware", firmware, scale, "row-firmware", onShow),
            renderMapRow("This boot", boot, scale, "row-boot", onShow),
            renderMapRow("Next boot", [...firmware.filter(r => r.type === "usable"), ...next],
                         scale, "row-next", onShow),
            renderAxis(scale)]);
        const seen = new Set([...firmware, ...boot, ...next].map(r => r.type));
        patch(places.legend, [...seen].map(type => el(
            "span", { class: "legend-item" }, el("span", { class: `swatch type-${type}` }),
            TYPE_NAMES[type] || type)));
        patch(places.table, firmware.map(r => el(
            "tr", {}, el("td", {}, L.hex(r.start)), el("td", {}, L.hex(r.start + r.size - 1)),
            el("td", {}, L.formatSize(r.size)), el("td", {}, r.label || r.type))));
    }

    window.pmemdMap = { draw };
}());
