// Incidents card (Phase 77): not installed yet; its phase replaces this file with an echoops.registerCard({...}) call.
