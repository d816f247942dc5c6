// Build-time stand-in for the `xmlbuilder2` package. vtk.js only needs it for its XML
// file readers/writers (VTP meshes), which the viewer never uses; the real package also
// depends on Node's `events` module and breaks in the browser bundle.
export function create() {
  throw new Error('XML (VTK) readers are not included in the Telemed viewer');
}
export default { create };
