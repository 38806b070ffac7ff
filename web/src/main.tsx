/**
 * Entry point of the web app served at `GET /` (bundled by web/build.ts).
 *
 * @module
 */
import "tldraw/tldraw.css";
import "./styles.css";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./app.tsx";

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
