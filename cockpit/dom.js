/*
 * pmemd's Cockpit page: building and updating DOM nodes, as window.pmemdDom.
 *
 *   el(tag, props, ...children)   a new element
 *   patch(parent, children)       make parent's children equal to children, keeping the
 *                                 nodes that are already equal (focus and hover stay)
 */
"use strict";

(function () {
    function el(tag, props, ...children) {
        const node = document.createElement(tag);
        for (const [key, value] of Object.entries(props || {})) {
            if (key === "class")
                node.className = value;
            else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role")
                node.setAttribute(key, value);
            else
                node[key] = value;
        }
        for (const child of children)
            node.append(child);
        return node;
    }

    /* Make parent's children equal to ``children``, keeping every existing node that is
     * already equal to its new counterpart: a render that changes nothing there moves no
     * keyboard focus and keeps what a user is pointing at. */
    function patch(parent, children) {
        const old = [...parent.children];
        children.forEach((child, index) => {
            const existing = old[index];
            if (!existing)
                parent.append(child);
            else if (!existing.isEqualNode(child))
                parent.replaceChild(child, existing);
        });
        for (const extra of old.slice(children.length))
            extra.remove();
    }

    window.pmemdDom = { el, patch };
}());
