// The memory map's segments in the row matching arguments[0]: their data attributes and
// their boxes, in pixels from the left edge of their track.
return [...document.querySelectorAll(arguments[0] + " .map-segment")].map(segment => {
    const box = segment.getBoundingClientRect();
    const track = segment.parentElement.getBoundingClientRect();
    return {
        start: Number(segment.dataset.start),
        size: Number(segment.dataset.size),
        type: segment.dataset.type,
        region: segment.dataset.region || null,
        label: segment.getAttribute("aria-label"),
        left: box.left - track.left,
        width: box.width,
    };
});
