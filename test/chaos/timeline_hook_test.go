package chaos

// renderTimeline draws the run's timeline picture. TIMELINE CALL SITE:
// test/chaos/timeline (Render(path, ops, faults) error, being built by
// another session) has not landed yet; once it has, set this to an
// adapter converting []TimelineOp and []Window to its Op and Window.
var renderTimeline RenderFunc = nil
