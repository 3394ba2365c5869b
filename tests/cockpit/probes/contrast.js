// Text whose contrast with its background is below WCAG AA (4.5:1), as [tag, text, ratio].
function rgba(text) {
    return text.match(/[\d.]+/g).slice(0, 4).map(Number);
}
function luminance([r, g, b]) {
    return [r, g, b].map(v => {
        v /= 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    }).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
}
function background(element) {
    for (let e = element; e; e = e.parentElement) {
        const colour = rgba(getComputedStyle(e).backgroundColor);
        if (colour.length < 4 || colour[3] > 0)
            return colour;
    }
    return [255, 255, 255];
}
const low = [];
const texts = "#banner *, td, th, li, button, label, .map-label, .hint, .legend-item";
for (const e of document.querySelectorAll(texts)) {
    if (!e.offsetParent || !e.textContent.trim())
        continue;
    const a = luminance(rgba(getComputedStyle(e).color));
    const b = luminance(background(e));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5)
        low.push([e.tagName, e.textContent.trim().slice(0, 30), ratio.toFixed(2)]);
}
return low;
