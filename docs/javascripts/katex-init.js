// Render the math pymdownx.arithmatex (generic mode) leaves as \( \) and \[ \] spans,
// on every page load, instant navigation included (Material's document$ stream).
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "$$", right: "$$", display: true },
      { left: "\\[", right: "\\]", display: true },
      { left: "\\(", right: "\\)", display: false },
    ],
    throwOnError: true,
  });
});
