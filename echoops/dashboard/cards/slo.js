// SLO & Error Budget card (Phase 76): not installed yet; its phase replaces this file with an echoops.registerCard({...}) call.
