/* brats_sdk slice viewer: scrolls the axial slices of the volumes embedded in the page.
 *
 * Self-contained: no library, no network. Each viewer is a <div class="bv"> holding
 * <script type="application/json" class="bv-config"> (colours, regions) and one
 * <script type="application/json" class="bv-vol"> per volume (see
 * brats_sdk/report/viewer_data.py for the payload). A volume's JSON is parsed and its
 * images decoded only when it is first shown.
 *
 * The canvas holds the brain box at native resolution; CSS scales it. Layers, in order:
 * the modality's slice, the filled prediction (and the error view over it) at the chosen
 * opacity, the uncertainty map (its value is the alpha), and the truth as an opaque
 * outline. Where a layer has no mask, its pixels are transparent: a toggle changes only
 * the pixels of its own mask.
 */
(function () {
  "use strict";

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "className") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }

  function rgb(hex) {
    var v = parseInt(hex.slice(1), 16);
    return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
  }

  function decodeRuns(b64, size) {
    var bytes = atob(b64), out = new Uint8Array(size), pos = 0, code = 0, shift = 0;
    for (var i = 0; i < bytes.length; i++) {
      var b = bytes.charCodeAt(i);
      code += (b & 127) * Math.pow(2, shift);
      shift += 7;
      if (!(b & 128)) {
        var value = code % 4, length = Math.floor(code / 4);
        if (value) out.fill(value, pos, pos + length);
        pos += length;
        code = 0;
        shift = 0;
      }
    }
    if (pos !== size) throw new Error("label runs cover " + pos + " voxels, expected " + size);
    return out;
  }

  function loadImage(src) {
    var img = new Image();
    img.src = src;
    return img.decode().then(function () { return img; });
  }

  function Viewer(root) {
    this.root = root;
    this.config = JSON.parse(root.querySelector("script.bv-config").textContent);
    this.tags = Array.prototype.slice.call(root.querySelectorAll("script.bv-vol"));
    this.cache = {};
    this.vol = null;
    this.index = 0;
    this.wheel = 0;
    this.build();
    this.select(0);
  }

  Viewer.prototype.build = function () {
    var self = this, cfg = this.config;
    var opt = function (value, text) { return el("option", { value: value, text: text }); };
    this.volumeSel = el("select", { className: "bv-volume", "aria-label": "volume" },
      this.tags.map(function (t, i) { return opt(String(i), t.getAttribute("data-label")); }));
    this.modalitySel = el("select", { className: "bv-modality", "aria-label": "image" });
    this.predBox = el("input", { type: "checkbox", className: "bv-pred", checked: "" });
    this.truthBox = el("input", { type: "checkbox", className: "bv-truth", checked: "" });
    this.errorBox = el("input", { type: "checkbox", className: "bv-error" });
    this.errorSel = el("select", { className: "bv-error-region", "aria-label": "error region" },
      Object.keys(cfg.errors).map(function (r) { return opt(r, r); }));
    this.uncBox = el("input", { type: "checkbox", className: "bv-unc" });
    this.uncSel = el("select", { className: "bv-unc-map", "aria-label": "uncertainty map" });
    this.opacity = el("input", { type: "range", className: "bv-opacity", min: "0", max: "100", value: "50", "aria-label": "overlay opacity" });
    this.zoomSel = el("select", { className: "bv-zoom", "aria-label": "zoom" },
      [opt("fit", "fit width"), opt("1", "1×"), opt("2", "2×"), opt("3", "3×")]);
    var label = function (text, control, cls) {
      return el("label", { className: cls || "" }, [control, document.createTextNode(" " + text)]);
    };
    this.truthLabel = label("truth (outline)", this.truthBox);
    this.errorLabel = el("span", { className: "bv-group" }, [label("errors of", this.errorBox), this.errorSel]);
    this.uncLabel = el("span", { className: "bv-group" }, [label("uncertainty", this.uncBox), this.uncSel]);
    var volumeGroup = el("label", { className: "bv-group" }, [document.createTextNode("Volume "), this.volumeSel]);
    if (this.tags.length < 2) volumeGroup.hidden = true;
    var bar = el("div", { className: "bv-bar" }, [
      volumeGroup,
      el("label", { className: "bv-group" }, [document.createTextNode("Image "), this.modalitySel]),
      label("prediction", this.predBox), this.truthLabel, this.errorLabel, this.uncLabel,
      el("label", { className: "bv-group" }, [document.createTextNode("Opacity "), this.opacity]),
      el("label", { className: "bv-group" }, [document.createTextNode("Zoom "), this.zoomSel]),
    ]);
    this.canvas = el("canvas", { className: "bv-canvas" });
    this.stage = el("div", { className: "bv-stage", tabindex: "0",
      "aria-label": "slice image: mouse wheel or arrow keys change the slice" }, [this.canvas]);
    this.sliceText = el("div", { className: "bv-slice", "aria-live": "polite" });
    this.slider = el("input", { type: "range", className: "bv-slider", min: "0", max: "0", value: "0", "aria-label": "slice" });
    this.mlTable = el("table", { className: "bv-ml" });
    this.jumps = el("div", { className: "bv-jump" });
    this.legend = el("div", { className: "bv-legend" });
    var side = el("div", { className: "bv-side" }, [this.sliceText, this.slider, this.mlTable, this.jumps, this.legend]);
    this.root.appendChild(bar);
    this.root.appendChild(el("div", { className: "bv-main" }, [this.stage, side]));

    var redraw = function () { self.draw(); };
    [this.predBox, this.truthBox, this.errorBox, this.uncBox].forEach(function (b) { b.addEventListener("change", redraw); });
    [this.errorSel, this.uncSel, this.modalitySel].forEach(function (s) { s.addEventListener("change", redraw); });
    this.errorSel.addEventListener("change", function () { if (self.vol) self.buildLegend(self.vol); });
    this.opacity.addEventListener("input", redraw);
    this.zoomSel.addEventListener("change", function () { self.zoom(); });
    this.volumeSel.addEventListener("change", function () { self.select(Number(self.volumeSel.value)); });
    this.slider.addEventListener("input", function () { self.go(Number(self.slider.value)); });
    this.stage.addEventListener("wheel", function (e) {
      e.preventDefault();
      self.wheel += e.deltaMode === 1 ? e.deltaY * 40 : e.deltaY;
      if (Math.abs(self.wheel) >= 40) {
        self.go(self.index + (self.wheel > 0 ? 1 : -1));
        self.wheel = 0;
      }
    }, { passive: false });
    this.root.addEventListener("keydown", function (e) {
      var tag = e.target.tagName;
      if (tag === "INPUT" || tag === "SELECT" || !self.vol) return;
      var step = { ArrowUp: 1, ArrowRight: 1, ArrowDown: -1, ArrowLeft: -1, PageUp: 10, PageDown: -10 }[e.key];
      if (e.key === "Home") step = -self.index;
      if (e.key === "End") step = self.vol.n - 1 - self.index;
      if (step === undefined) return;
      e.preventDefault();
      self.go(self.index + step);
    });
  };

  Viewer.prototype.load = function (i) {
    if (this.cache[i]) return this.cache[i];
    var v = JSON.parse(this.tags[i].textContent), size = v.n * v.h * v.w;
    v.predLabels = decodeRuns(v.pred, size);
    v.truthLabels = v.truth ? decodeRuns(v.truth, size) : null;
    var images = Promise.all(v.modalities.map(function (m) { return loadImage(m.src); }));
    var unc = Promise.all(v.unc.map(function (u) {
      return loadImage(u.src).then(function (img) {
        var c = el("canvas");
        c.width = img.naturalWidth;
        c.height = img.naturalHeight;
        var g = c.getContext("2d");
        g.drawImage(img, 0, 0);
        return g.getImageData(0, 0, c.width, c.height);
      });
    }));
    this.cache[i] = Promise.all([images, unc]).then(function (r) {
      v.images = r[0];
      v.uncData = r[1];
      return v;
    });
    return this.cache[i];
  };

  Viewer.prototype.select = function (i) {
    var self = this;
    this.volumeSel.value = String(i);
    return this.load(i).then(function (v) {
      if (Number(self.volumeSel.value) !== i) return;
      self.vol = v;
      self.canvas.width = v.w;
      self.canvas.height = v.h;
      self.layers = [0, 1, 2].map(function () {
        var c = el("canvas");
        c.width = v.w;
        c.height = v.h;
        return c;
      });
      // The modality shown stays the same across volumes when the new one has it.
      var names = v.modalities.map(function (m) { return m.name; });
      self.modalitySel.textContent = "";
      names.forEach(function (name, k) { self.modalitySel.appendChild(el("option", { value: String(k), text: name })); });
      if (!names.length) self.modalitySel.appendChild(el("option", { value: "-1", text: "none" }));
      self.modalitySel.value = names.length ? String(Math.max(0, names.indexOf(self.modalityName || ""))) : "-1";
      self.uncSel.textContent = "";
      v.unc.forEach(function (u, k) { self.uncSel.appendChild(el("option", { value: String(k), text: u.name })); });
      self.truthLabel.hidden = self.errorLabel.hidden = !v.truthLabels;
      self.uncLabel.hidden = !v.unc.length;
      self.slider.max = String(v.n - 1);
      self.buildJumps(v);
      self.buildLegend(v);
      self.zoom();
      var start = v.jump.tumour.length ? v.jump.tumour[0] : Math.floor(v.n / 2);
      self.go(start);
      if (!self.root.hasAttribute("data-ready")) {
        performance.mark("bv-first-paint");
        self.root.setAttribute("data-ready", "1");
      }
      self.root.setAttribute("data-volume", String(v.volume));
    }).catch(function (err) {
      self.sliceText.textContent = "This volume cannot be shown: " + err.message;
      throw err;
    });
  };

  Viewer.prototype.buildJumps = function (v) {
    var self = this;
    this.jumps.textContent = "";
    var row = function (title, list) {
      if (!list.length) return;
      var p = el("div", { className: "bv-jump-row" }, [el("span", { text: title + ": " })]);
      list.forEach(function (k) {
        var b = el("button", { type: "button", text: String(v.z0 + k) });
        b.addEventListener("click", function () { self.go(k); });
        p.appendChild(b);
      });
      self.jumps.appendChild(p);
    };
    row("Most tumour", v.jump.tumour);
    row("Largest error", v.jump.error);
  };

  Viewer.prototype.buildLegend = function (v) {
    var cfg = this.config, legend = this.legend;
    legend.textContent = "";
    var item = function (colour, text, outline) {
      var sw = el("span", { className: outline ? "bv-swatch bv-outline" : "bv-swatch" });
      sw.style[outline ? "borderColor" : "background"] = colour;
      legend.appendChild(el("span", { className: "bv-item" }, [sw, document.createTextNode(text)]));
    };
    cfg.classes.forEach(function (c) { item(c.colour, c.name); });
    if (v.truthLabels) {  // the error colours of the region chosen for the error view
      var r = this.errorSel.value;
      item(cfg.errors[r].fp, r + " false positive");
      item(cfg.errors[r].fn, r + " false negative");
    }
    if (v.unc.length) item(cfg.uncertainty, "uncertainty (more opaque: less certain)");
  };

  Viewer.prototype.zoom = function () {
    var z = this.zoomSel.value, c = this.canvas;
    c.classList.toggle("bv-fit", z === "fit");
    c.style.width = z === "fit" || !this.vol ? "" : this.vol.w * Number(z) + "px";
  };

  Viewer.prototype.go = function (k) {
    var v = this.vol;
    if (!v) return;
    this.index = Math.max(0, Math.min(v.n - 1, k));
    this.slider.value = String(this.index);
    this.draw();
  };

  Viewer.prototype.draw = function () {
    var v = this.vol, cfg = this.config;
    if (!v) return;
    var i = this.index, w = v.w, h = v.h, ctx = this.canvas.getContext("2d");
    var sx = (i % v.cols) * v.tw, sy = Math.floor(i / v.cols) * v.th;
    var m = Number(this.modalitySel.value);
    if (m >= 0 && v.images[m]) this.modalityName = v.modalities[m].name;
    ctx.globalAlpha = 1;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, w, h);
    if (m >= 0 && v.images[m]) ctx.drawImage(v.images[m], sx, sy, w, h, 0, 0, w, h);

    var off = i * w * h, pred = v.predLabels, truth = v.truthLabels;
    var fill = new ImageData(w, h), unc = new ImageData(w, h), line = new ImageData(w, h);
    var classRgb = cfg.classes.map(function (c) { return rgb(c.colour); });
    var put = function (img, p, c, a) {
      img.data[4 * p] = c[0]; img.data[4 * p + 1] = c[1]; img.data[4 * p + 2] = c[2]; img.data[4 * p + 3] = a;
    };
    var showPred = this.predBox.checked, showTruth = truth && this.truthBox.checked;
    var showError = truth && this.errorBox.checked, showUnc = v.unc.length && this.uncBox.checked;
    var region = cfg.regions[this.errorSel.value] || [], err = cfg.errors[this.errorSel.value];
    var inRegion = [0, 1, 2, 3].map(function (c) { return region.indexOf(c) >= 0; });
    var fp = err ? rgb(err.fp) : null, fn = err ? rgb(err.fn) : null;
    var uData = showUnc ? v.uncData[Number(this.uncSel.value) || 0] : null, uColour = rgb(cfg.uncertainty);
    for (var y = 0; y < h; y++) {
      for (var x = 0; x < w; x++) {
        var p = y * w + x, q = off + p, pc = pred[q];
        if (showPred && pc) put(fill, p, classRgb[pc - 1], 255);
        if (showError) {
          var a = inRegion[pc], b = inRegion[truth[q]];
          if (a && !b) put(fill, p, fp, 255);
          else if (b && !a) put(fill, p, fn, 255);
        }
        if (uData) {
          var u = uData.data[4 * ((sy + y) * uData.width + sx + x)];
          if (u) put(unc, p, uColour, u);
        }
        if (showTruth) {
          var t = truth[q];
          if (t && (x === 0 || y === 0 || x === w - 1 || y === h - 1 || truth[q - 1] !== t || truth[q + 1] !== t ||
                    truth[q - w] !== t || truth[q + w] !== t)) put(line, p, classRgb[t - 1], 255);
        }
      }
    }
    var alpha = Number(this.opacity.value) / 100;
    var layers = this.layers;
    [[fill, alpha], [unc, alpha], [line, 1]].forEach(function (pair, k) {
      layers[k].getContext("2d").putImageData(pair[0], 0, 0);
      ctx.globalAlpha = pair[1];
      ctx.drawImage(layers[k], 0, 0);
    });
    ctx.globalAlpha = 1;
    this.caption();
  };

  Viewer.prototype.caption = function () {
    var v = this.vol, i = this.index;
    this.sliceText.textContent = "Slice " + (v.z0 + i) + " of 0–" + (v.depth - 1) + " (" + (i + 1) + " of " + v.n + " with brain)";
    this.root.setAttribute("data-slice", String(v.z0 + i));
    this.slider.setAttribute("aria-valuetext", "slice " + (v.z0 + i));
    var rows = [["", "WT", "TC", "ET"]];
    var fmt = function (x) { return x.toFixed(2); };
    rows.push(["prediction"].concat(v.ml.pred[i].map(fmt)));
    if (v.ml.truth) rows.push(["truth"].concat(v.ml.truth[i].map(fmt)));
    this.mlTable.textContent = "";
    this.mlTable.appendChild(el("caption", { text: "Region volume on this slice (mL)" }));
    rows.forEach(function (r, k) {
      this.mlTable.appendChild(el("tr", {}, r.map(function (c, j) {
        return el(k === 0 || j === 0 ? "th" : "td", { text: c });
      })));
    }, this);
  };

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("div.bv"), function (root) {
      if (!root.bvViewer) root.bvViewer = new Viewer(root);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
