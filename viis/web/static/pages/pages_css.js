// Styles of the playback, camera and mask pages, loaded once by whichever of them opens first
// (the shell's style.css stays the shell's).

export function useStyles() {
  if (document.getElementById("pages-css")) return;
  document.head.append(Object.assign(document.createElement("link"), {
    id: "pages-css", rel: "stylesheet", href: "/static/pages/pages.css",
  }));
}
